"""A fake Archipelago for tests: the JSON:API routes the uploader uses, answering as
Drupal core and Strawberry Field do (see /work/shared/archipelago.md §9), with scripted faults.

What it keeps: files (temporary until an object references them), objects (nodes) by UUID
with auto-increment ids, AMI sets, and a log of every request. What it enforces: Basic auth
(401 with `WWW-Authenticate`, a flood lock after repeated failures, 403 for users without
permission), content types (415), the `Content-Disposition` file name rules (400), the
resource document rules (400/422), 409 for an existing UUID, and the presave that keeps
only integer file ids named in `ap:entitymapping`, makes those files permanent and builds
`as:*` structures. Faults are matched per route and method on the Nth call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

JSONAPI = "application/vnd.api+json"
# The account Archipelago's own tools use (role metadata_api).
USER = "jsonapi"
PASSWORD = "jsonapi"
BUNDLES = ("digital_object", "digital_object_collection")
AMI_TYPE = "ami_set_entity--ami_set_entity"
FILENAME = re.compile(r'\bfilename(\*?)="(.+)"')
MIME = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".jp2": "image/jp2",
    ".png": "image/png",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".json": "application/json",
    ".zip": "application/zip",
    ".csv": "text/csv",
}
AS_KEYS = {"image", "document", "video", "audio", "text", "model"}
DISPOSITION_REQUIRED = (
    '"Content-Disposition" header is required. A file name in the format "filename=FILENAME" must be provided.'
)
DISPOSITION_NO_NAME = (
    'No filename found in "Content-Disposition" header. A file name in the format "filename=FILENAME" must be provided.'
)
DISPOSITION_EXTENDED = 'The extended "filename*" format is currently not supported in the "Content-Disposition" header.'
DEFAULT_DETAIL = {
    401: "No authentication credentials provided.",
    403: "The current user is not permitted to upload a file for this field. The following permissions are required: "
    "'upload to Digital Object file dropbox field'.",
    409: "Conflict: Entity already exists.",
    415: 'No route found that matches "Content-Type: application/json"',
    422: "Unprocessable Entity: validation failed.\nfield_descriptive_metadata: The supplied value is not valid.",
    429: "Too Many Requests",
    500: "Temporary file 'temporary://abc' could not be moved to file location 'private://sbf_tmp/x.pdf'.",
    503: 'File "private://sbf_tmp/x.pdf" is already locked for writing.',
}
HTML_STATUSES = frozenset({413, 502, 504})


# --- state ----------------------------------------------------------------------------


@dataclass
class FakeFile:
    fid: int
    uuid: str
    filename: str
    mime: str
    data: bytes
    permanent: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class FakeNode:
    uuid: str
    nid: int
    bundle: str
    title: str
    moderation_state: str
    sbf: dict[str, Any]
    revision: int = 1


@dataclass
class FakeAmiSet:
    uuid: str
    id: int
    name: str
    set: str
    status: str
    source_data: list[int] = field(default_factory=list)


@dataclass
class LoggedRequest:
    method: str
    path: str
    route: str
    bundle: str | None
    target: str | None  # the UUID the request is about (from the path or the body's data.id)
    filename: str | None
    authorized: bool
    fault: Fault | None
    at: float
    status: int = 0
    has_cookie: bool = False


@dataclass
class Fault:
    """A scripted answer for calls of one method and route (see `FakeArchipelago.ROUTES`).

    It matches the `nth` call (counted per method and route from 1) and the `times - 1`
    calls after it; without `nth`, the next `times` calls. With `bundle`, only calls for
    that bundle count. `status` answers with that error; `delay_s` waits first (longer than
    the client's timeout makes a slow server); `commit` does the real work first and then
    answers with `status` (or only late, with `delay_s`) - a save whose answer was lost.
    """

    method: str
    route: str
    status: int | None = None
    nth: int | None = None
    times: int = 1
    bundle: str | None = None
    delay_s: float = 0.0
    commit: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    detail: str | None = None
    used: int = 0

    def matches(self, method: str, route: str, bundle: str | None, call: int) -> bool:
        if (method, route) != (self.method, self.route) or (self.bundle and bundle != self.bundle):
            return False
        if self.nth is None:
            return self.used < self.times
        return self.nth <= call < self.nth + self.times


def error_document(status: int, detail: str, via: str) -> dict[str, Any]:
    return {
        "jsonapi": {"version": "1.0", "meta": {"links": {"self": {"href": "http://jsonapi.org/format/1.0/"}}}},
        "errors": [
            {
                "title": HTTPStatus(status).phrase,
                "status": str(status),
                "detail": detail,
                "links": {"via": {"href": via}},
            }
        ],
    }


def nginx_page(status: int) -> str:
    title = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


def jsonapi_error(
    status: int, detail: str | None = None, *, via: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    """An error as Drupal (JSON:API document) or the nginx in front of it (HTML) answers it."""
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Basic realm="Archipelago"')
    if status == 503:
        all_headers.setdefault("Retry-After", "1")
    if status in HTML_STATUSES and detail is None:
        return web.Response(status=status, text=nginx_page(status), content_type="text/html", headers=all_headers)
    body = error_document(status, detail or DEFAULT_DETAIL.get(status, HTTPStatus(status).phrase), via)
    return web.Response(status=status, text=json.dumps(body), content_type=JSONAPI, headers=all_headers)


class Refused(Exception):
    """Stop a request with a JSON:API error."""

    def __init__(self, status: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class FakeArchipelago:
    """The fake server. `async with FakeArchipelago() as fake:` serves it on a free port."""

    ROUTES = (
        "entry",
        "file_upload",
        "node_create",
        "node_list",
        "node_get",
        "node_patch",
        "node_delete",
        "ami_create",
        "ami_get",
        "ami_upload",
        "ami_page",
        "do_page",
    )

    def __init__(
        self,
        user: str = USER,
        password: str = PASSWORD,
        *,
        flood_limit: int = 10,
        forbidden: tuple[str, ...] = (),
    ) -> None:
        self.user, self.password = user, password
        self.flood_limit = flood_limit
        self.forbidden_users = set(forbidden)
        self.failed_logins = 0
        self.files: dict[int, FakeFile] = {}
        self.nodes: dict[str, FakeNode] = {}
        self.ami_sets: dict[str, FakeAmiSet] = {}
        self.log: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.dangling: list[tuple[str, str, object]] = []  # (node uuid, key, value) dropped by presave
        self._calls: Counter[tuple[str, str, str | None]] = Counter()
        self._ids = {"fid": 4700, "nid": 900, "ami": 10}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> FakeArchipelago:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        self._add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # wakes every scripted delay
        if self._runner is not None:
            await self._runner.cleanup()

    def _add_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/jsonapi", self._entry, name="entry")
        add("POST", "/jsonapi/node/{bundle}/{field}", self._file_upload, name="file_upload")
        add("POST", "/jsonapi/node/{bundle}", self._node_create, name="node_create")
        add("GET", "/jsonapi/node/{bundle}", self._node_list, name="node_list")
        add("GET", "/jsonapi/node/{bundle}/{uuid}", self._node_get, name="node_get")
        add("PATCH", "/jsonapi/node/{bundle}/{uuid}", self._node_patch, name="node_patch")
        add("DELETE", "/jsonapi/node/{bundle}/{uuid}", self._node_delete, name="node_delete")
        add("POST", "/jsonapi/ami_set_entity/ami_set_entity", self._ami_create, name="ami_create")
        add("GET", "/jsonapi/ami_set_entity/ami_set_entity/{uuid}", self._ami_get, name="ami_get")
        add("POST", "/jsonapi/ami_set_entity/ami_set_entity/{uuid}/{field}", self._ami_upload, name="ami_upload")
        add("GET", "/amiset/{id}", self._ami_page, name="ami_page")
        add("GET", "/do/{uuid}", self._do_page, name="do_page")

    # --- helpers for tests ----------------------------------------------------------------

    def fail(self, method: str, route: str, status: int | None = None, **options: Any) -> Fault:
        """Script a fault (see `Fault`); returns it so a test can see how often it fired."""
        assert route in self.ROUTES, route
        fault = Fault(method, route, status, **options)
        self.faults.append(fault)
        return fault

    def objects(self, bundle: str = "digital_object") -> list[FakeNode]:
        return [node for node in self.nodes.values() if node.bundle == bundle]

    def files_of(self, node: FakeNode, key: str) -> list[FakeFile]:
        return [self.files[fid] for fid in node.sbf.get(key, [])]

    def requests(self, method: str | None = None, route: str | None = None, **match: object) -> list[LoggedRequest]:
        return [
            entry
            for entry in self.log
            if (method is None or entry.method == method)
            and (route is None or entry.route == route)
            and all(getattr(entry, key) == value for key, value in match.items())
        ]

    # --- the middleware: log, count, inject -------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        bundle = request.match_info.get("bundle")
        key = (request.method, route, bundle)
        self._calls[key] += 1
        call_any = sum(n for (m, r, _), n in self._calls.items() if (m, r) == (request.method, route))
        fault = next(
            (f for f in self.faults if f.matches(request.method, route, bundle, self._by_fault(f, key, call_any))), None
        )
        if fault is not None:
            fault.used += 1
        entry = LoggedRequest(
            method=request.method,
            path=request.path,
            route=route,
            bundle=bundle,
            target=await self._target(request),
            filename=_filename(request.headers.get("Content-Disposition", "")),
            authorized=self._user(request) is not None,
            fault=fault,
            at=time.monotonic(),
            has_cookie="Cookie" in request.headers,
        )
        self.log.append(entry)
        response = await self._answer(request, handler, fault)
        entry.status = response.status
        return response

    def _by_fault(self, fault: Fault, key: tuple[str, str, str | None], call_any: int) -> int:
        return self._calls[key] if fault.bundle else call_any

    async def _target(self, request: web.Request) -> str | None:
        if "uuid" in request.match_info:
            return request.match_info["uuid"]
        if request.content_type == JSONAPI:
            try:
                return str(json.loads(await request.read())["data"]["id"])
            except (ValueError, KeyError, TypeError):
                return None
        return None

    async def _answer(self, request: web.Request, handler: Handler, fault: Fault | None) -> web.StreamResponse:
        if fault is None:
            return await self._handle(request, handler)
        if not fault.commit:
            await self._pause(fault.delay_s)
            if self._closing.is_set():
                return jsonapi_error(503)
            if fault.status is None:
                return await self._handle(request, handler)
            return jsonapi_error(fault.status, fault.detail, via=str(request.url), headers=fault.headers)
        response = await self._handle(request, handler)
        await self._pause(fault.delay_s)
        if fault.status is None:
            return response
        return jsonapi_error(fault.status, fault.detail, via=str(request.url), headers=fault.headers)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as refused:
            return jsonapi_error(refused.status, refused.detail, via=str(request.url))

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    # --- auth -----------------------------------------------------------------------------

    def _user(self, request: web.Request) -> str | None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        locked = self.failed_logins >= self.flood_limit
        if locked or (user, password) != (self.user, self.password):
            return None
        return user

    def _writer(self, request: web.Request) -> str:
        """The authenticated user allowed to write; 401 (counted toward the flood lock) or 403."""
        user = self._user(request)
        if user is None:
            if "Authorization" in request.headers:
                self.failed_logins += 1
            raise Refused(401)
        if user in self.forbidden_users:
            raise Refused(403)
        return user

    # --- the entry point and pages -----------------------------------------------------------

    async def _entry(self, request: web.Request) -> web.Response:
        # 200 for anyone; only a valid login shows `me` (bad credentials make you anonymous).
        body: dict[str, Any] = {"jsonapi": {"version": "1.0"}, "data": [], "links": {"self": {"href": self.url}}}
        user = self._user(request)
        if user is None and "Authorization" in request.headers:
            self.failed_logins += 1
        if user is not None:
            me = str(uuid.uuid5(uuid.NAMESPACE_DNS, user))
            body["meta"] = {"links": {"me": {"meta": {"id": me}, "href": f"{self.url}/jsonapi/user/user/{me}"}}}
        return _json(body)

    async def _do_page(self, request: web.Request) -> web.Response:
        node = self.nodes.get(request.match_info["uuid"])
        if node is None:
            return web.Response(status=404, text="<html><title>Page not found</title></html>", content_type="text/html")
        return web.Response(text=f"<html><title>{node.title}</title></html>", content_type="text/html")

    async def _ami_page(self, request: web.Request) -> web.Response:
        if not any(str(s.id) == request.match_info["id"] for s in self.ami_sets.values()):
            return web.Response(status=404, text="<html><title>Page not found</title></html>", content_type="text/html")
        return web.Response(text="<html><title>AMI set</title></html>", content_type="text/html")

    # --- E1: files --------------------------------------------------------------------------

    async def _file_upload(self, request: web.Request) -> web.Response:
        bundle, field_name = request.match_info["bundle"], request.match_info["field"]
        self._writer(request)
        if bundle not in BUNDLES or field_name != "field_file_drop":
            raise Refused(404, f'Field "{field_name}" does not exist.')
        file = await self._receive_file(request)
        return _json(self._file_document(file), status=201)

    async def _receive_file(self, request: web.Request) -> FakeFile:
        if request.content_type != "application/octet-stream":
            raise Refused(415, f'No route found that matches "Content-Type: {request.content_type}"')
        name = _disposition_name(request.headers.get("Content-Disposition"))
        data = await request.read()
        self._ids["fid"] += 1
        file = FakeFile(self._ids["fid"], str(uuid.uuid4()), self._unique(name), _mime(name), data)
        self.files[file.fid] = file
        return file

    def _unique(self, name: str) -> str:
        taken = {file.filename for file in self.files.values()}
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        candidate, n = name, 0
        while candidate in taken:
            candidate = f"{stem}_{n}{suffix}"
            n += 1
        return candidate

    def _file_document(self, file: FakeFile) -> dict[str, Any]:
        href = f"{self.url}/jsonapi/file/file/{file.uuid}"
        return {
            "jsonapi": {"version": "1.0"},
            "links": {"self": {"href": href}},
            "data": {
                "type": "file--file",
                "id": file.uuid,
                "links": {"self": {"href": href}},
                "attributes": {
                    "drupal_internal__fid": file.fid,
                    "langcode": "en",
                    "filename": file.filename,
                    "uri": {
                        "value": f"private://sbf_tmp/{file.filename}",
                        "url": f"/system/files/sbf_tmp/{file.filename}",
                    },
                    "filemime": file.mime,
                    "filesize": file.size,
                    "status": file.permanent,
                },
            },
        }

    # --- E2-E6: objects ---------------------------------------------------------------------

    async def _node_create(self, request: web.Request) -> web.Response:
        bundle = _bundle(request)
        self._writer(request)
        data = await _resource(request, f"node--{bundle}")
        object_id = str(data.get("id") or uuid.uuid4())
        _check_uuid(object_id)
        attributes = data.get("attributes") or {}
        if not attributes.get("title"):
            raise Refused(422, "Unprocessable Entity: validation failed.\ntitle: This value should not be null.")
        sbf = _sbf(attributes)
        if object_id in self.nodes:
            raise Refused(409)
        self._ids["nid"] += 1
        node = FakeNode(object_id, self._ids["nid"], bundle, "", attributes.get("moderation_state", "draft"), {})
        self._presave(node, sbf)
        self.nodes[object_id] = node
        headers = {"Location": f"{self.url}/jsonapi/node/{bundle}/{object_id}"}
        return _json(self._node_document(node), status=201, headers=headers)

    async def _node_get(self, request: web.Request) -> web.Response:
        node = self._node(request)
        if node.moderation_state != "published" and self._user(request) is None:
            raise Refused(403, "The current user is not allowed to GET the selected resource.")
        return _json(self._node_document(node))

    async def _node_patch(self, request: web.Request) -> web.Response:
        self._writer(request)
        node = self._node(request)
        data = await _resource(request, f"node--{node.bundle}")
        if data.get("id") != node.uuid:
            raise Refused(400, f"The selected entity ({data.get('id')}) does not match the ID in the payload.")
        attributes = data.get("attributes") or {}
        if "moderation_state" in attributes:
            node.moderation_state = attributes["moderation_state"]
        sbf = _sbf(attributes) if "field_descriptive_metadata" in attributes else node.sbf
        self._presave(node, sbf)
        node.revision += 1
        return _json(self._node_document(node))

    async def _node_delete(self, request: web.Request) -> web.Response:
        self._writer(request)
        del self.nodes[self._node(request).uuid]
        return web.Response(status=204)

    async def _node_list(self, request: web.Request) -> web.Response:
        bundle = _bundle(request)
        title = request.query.get("filter[title]")
        limit = int(request.query.get("page[limit]", "50"))
        offset = int(request.query.get("page[offset]", "0"))
        found = [n for n in self.nodes.values() if n.bundle == bundle and (title is None or n.title == title)]
        body: dict[str, Any] = {"data": [self._node_document(n)["data"] for n in found[offset : offset + limit]]}
        body["links"] = {"self": {"href": str(request.url)}}
        if offset + limit < len(found):
            body["links"]["next"] = {
                "href": f"{self.url}{request.path}?page[offset]={offset + limit}&page[limit]={limit}"
            }
        return _json(body)

    def _node(self, request: web.Request) -> FakeNode:
        node = self.nodes.get(request.match_info["uuid"])
        if node is None or node.bundle != request.match_info["bundle"]:
            raise Refused(404, f"The requested resource {request.match_info['uuid']} does not exist.")
        return node

    def _presave(self, node: FakeNode, sbf: dict[str, Any]) -> None:
        """As Strawberry Field's presave does: keep integer ids of existing files under the
        keys `ap:entitymapping` names, make them permanent, build `as:*`, title from label."""
        mapping = (sbf.get("ap:entitymapping") or {}).get("entity:file") or []
        for key in list(AS_KEYS):
            sbf.pop(f"as:{key}", None)
        for key in mapping:
            kept = []
            for value in sbf.get(key) or []:
                if isinstance(value, int) and not isinstance(value, bool) and value > 0 and value in self.files:
                    kept.append(value)
                else:
                    self.dangling.append((node.uuid, key, value))
            sbf[key] = kept
            self._as_structure(sbf, key, kept, index=(sbf.get("ap:tasks") or {}).get("ap:sortfiles") == "index")
        node.sbf = sbf
        node.title = str(sbf.get("label") or node.title)[:255]

    def _as_structure(self, sbf: dict[str, Any], key: str, fids: list[int], *, index: bool) -> None:
        files = [self.files[fid] for fid in fids]
        if not index:
            files.sort(key=lambda f: f.filename)
        for sequence, file in enumerate(files, 1):
            file.permanent = True
            major = file.mime.split("/")[0]
            as_key = f"as:{major if major in AS_KEYS else 'document'}"
            sbf.setdefault(as_key, {})[f"urn:uuid:{file.uuid}"] = {
                "type": as_key[3:].capitalize(),
                "url": f"s3://archipelago/{file.filename}",
                "name": file.filename,
                "dr:fid": file.fid,
                "dr:for": key,
                "dr:uuid": file.uuid,
                "dr:mimetype": file.mime,
                "dr:filesize": file.size,
                "checksum": file.md5,
                "crypHashFunc": "md5",
                "sequence": sequence,
            }

    def _node_document(self, node: FakeNode) -> dict[str, Any]:
        href = f"{self.url}/jsonapi/node/{node.bundle}/{node.uuid}"
        value = json.dumps(node.sbf)
        attributes = {
            "drupal_internal__nid": node.nid,
            "drupal_internal__vid": node.nid * 10 + node.revision,
            "langcode": "en",
            "status": node.moderation_state == "published",
            "title": node.title,
            "moderation_state": node.moderation_state,
            "path": {"alias": f"/do/{node.uuid}", "pid": node.nid, "langcode": "en"},
            "field_descriptive_metadata": {"value": value, "str_flatten_keys": sorted(node.sbf)},
        }
        data = {
            "type": f"node--{node.bundle}",
            "id": node.uuid,
            "attributes": attributes,
            "links": {"self": {"href": href}},
        }
        return {"jsonapi": {"version": "1.0"}, "data": data, "links": {"self": {"href": href}}}

    # --- E7/E8: AMI sets ----------------------------------------------------------------------

    async def _ami_create(self, request: web.Request) -> web.Response:
        self._writer(request)
        data = await _resource(request, AMI_TYPE)
        set_id = str(data.get("id") or uuid.uuid4())
        _check_uuid(set_id)
        if set_id in self.ami_sets:
            raise Refused(409)
        attributes = data.get("attributes") or {}
        config = attributes.get("set")
        config = config.get("value") if isinstance(config, dict) else config
        if not isinstance(config, str):
            raise Refused(422, "Unprocessable Entity: validation failed.\nset: This value should not be null.")
        _parse_json(config)
        self._ids["ami"] += 1
        ami = FakeAmiSet(
            set_id, self._ids["ami"], str(attributes.get("name")), config, attributes.get("status", "READY")
        )
        self.ami_sets[set_id] = ami
        return _json({"data": self._ami_data(ami)}, status=201)

    async def _ami_get(self, request: web.Request) -> web.Response:
        self._writer(request)
        ami = self.ami_sets.get(request.match_info["uuid"])
        if ami is None:
            raise Refused(404, f"The requested resource {request.match_info['uuid']} does not exist.")
        return _json({"data": self._ami_data(ami)})

    async def _ami_upload(self, request: web.Request) -> web.Response:
        self._writer(request)
        ami = self.ami_sets.get(request.match_info["uuid"])
        if ami is None or request.match_info["field"] not in ("source_data", "zip_file"):
            raise Refused(404, f'Field "{request.match_info["field"]}" does not exist.')
        file = await self._receive_file(request)
        file.permanent = True
        ami.source_data.append(file.fid)
        # Core answers an upload to an existing resource with the related files (200).
        return _json({"data": [self._file_document(self.files[fid])["data"] for fid in ami.source_data]})

    def _ami_data(self, ami: FakeAmiSet) -> dict[str, Any]:
        attributes = {"drupal_internal__id": ami.id, "name": ami.name, "set": {"value": ami.set}, "status": ami.status}
        return {"type": AMI_TYPE, "id": ami.uuid, "attributes": attributes}


# --- request parsing ------------------------------------------------------------------------


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=JSONAPI, headers=headers)


def _bundle(request: web.Request) -> str:
    bundle = request.match_info["bundle"]
    if bundle not in BUNDLES:
        raise Refused(404, f'Resource type "node--{bundle}" does not exist.')
    return bundle


def _filename(header: str) -> str | None:
    match = FILENAME.search(header)
    return match.group(2) if match else None


def _disposition_name(header: str | None) -> str:
    if not header:
        raise Refused(400, DISPOSITION_REQUIRED)
    match = FILENAME.search(header)
    if match is None or not match.group(2).strip():
        raise Refused(400, DISPOSITION_NO_NAME)
    if match.group(1):
        raise Refused(400, DISPOSITION_EXTENDED)
    return PurePosixPath(match.group(2)).name


def _mime(name: str) -> str:
    return MIME.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


async def _resource(request: web.Request, expected_type: str) -> dict[str, Any]:
    if request.content_type != JSONAPI:
        raise Refused(415, f'No route found that matches "Content-Type: {request.content_type}"')
    try:
        data = json.loads(await request.read())["data"]
    except (ValueError, KeyError, TypeError):
        raise Refused(400, "Syntax error: the request body is not a JSON:API document.") from None
    if "type" not in data:
        raise Refused(400, 'Resource object must include a "type".')
    if data["type"] != expected_type:
        raise Refused(422, f"The resource type {data['type']} does not match {expected_type}.")
    result: dict[str, Any] = data
    return result


def _check_uuid(value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise Refused(422, "IDs should be properly generated and formatted UUIDs as described in RFC 4122.") from None


def _parse_json(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise Refused(
            422,
            "Unprocessable Entity: validation failed.\nfield_descriptive_metadata.0.value: "
            f"The supplied value is not valid JSON representation ({error}).",
        ) from None
    if not isinstance(parsed, dict):
        raise Refused(422, "Unprocessable Entity: validation failed.\nfield_descriptive_metadata: not a JSON object.")
    return parsed


def _sbf(attributes: dict[str, Any]) -> dict[str, Any]:
    value = attributes.get("field_descriptive_metadata")
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        raise Refused(
            422, "Unprocessable Entity: validation failed.\nfield_descriptive_metadata: This value should not be null."
        )
    return _parse_json(value)
