"""A fake Docker Engine API for the autoscaler's tests: the two service routes it uses,
answering as a Swarm manager does (moby's swarm router and spec conversion, swarmkit's
controlapi), on loopback TCP and on a unix socket, with scripted faults.

What it keeps: services with an id, a spec and a `Version.Index` taken from one counter for
the whole store (as Raft's index is), bumped by every write; and a log of every request.
What it enforces, as the Engine does:
- the API version in the path: below 1.44 or above 1.52 is refused with 400 and the
  Engine's words; a path without a version is served (as the newest);
- a service is found by id, by name or by a unique id prefix, else 404;
- an update needs `?version=` (400 otherwise) and a JSON body; the body replaces the whole
  spec, so what a client leaves out is lost: labels vanish, and a spec without
  `Mode.Replicated.Replicas` becomes 1 replica (moby's conversion); a spec without a name
  or a container image is refused (400), a renamed one or a changed mode too (501);
- a version that is not the service's current one is refused with 500 and
  `rpc error: code = Unknown desc = update out of sequence`.
Faults: `race(n)` makes another writer update the service just before each of the next n
updates, so they are stale for real; `fail(...)` answers a route with an error, late if asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import shutil
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

MIN_API = (1, 44)
MAX_API = (1, 52)
OUT_OF_SEQUENCE = "rpc error: code = Unknown desc = update out of sequence"
Route = Literal["inspect", "update"]


def _api(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, message: str) -> web.Response:
    """An error as the Engine writes it: JSON with one `message`."""
    return web.json_response({"message": message}, status=status)


@dataclass
class FakeService:
    id: str
    spec: dict[str, Any]
    version: int
    created_at: str
    updated_at: str
    previous_spec: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["Name"])

    @property
    def replicas(self) -> int | None:
        replicated = self.spec["Mode"].get("Replicated")
        return None if replicated is None else int(replicated["Replicas"])

    def inspected(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": self.created_at,
            "UpdatedAt": self.updated_at,
            "Spec": copy.deepcopy(self.spec),
            "Endpoint": {"Spec": {"Mode": "vip"}},
        }
        if self.previous_spec is not None:
            body["PreviousSpec"] = copy.deepcopy(self.previous_spec)
        return body


@dataclass
class Call:
    method: str
    route: str
    path: str
    api_version: str | None
    query: dict[str, str]
    body: Any
    fault: Fault | None
    service_id: str | None  # the service the path named, as found when the call came
    at: float  # time.monotonic() when it came
    status: int = 0


@dataclass
class Fault:
    """A scripted answer to the next `times` calls of `route`: `status` (with `message`)
    instead of the real handling, after `delay_s` (longer than the client's timeout: a
    slow Engine); or, with `race`, another writer's update first, then the real handling."""

    route: Route
    status: int | None = None
    message: str = "Internal Server Error"
    times: int = 1
    delay_s: float = 0.0
    race: bool = False
    used: int = 0


class FakeDockerEngine:
    """`async with FakeDockerEngine() as engine:` serves on `engine.url` and `engine.socket_path`;
    with `tls`, the TCP side is HTTPS as that context says (a client certificate required or not)."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self.services: dict[str, FakeService] = {}
        self.log: list[Call] = []
        self.faults: list[Fault] = []
        self._index = 10
        self._writes = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        # A short folder of its own: a unix socket path must fit in 108 bytes.
        self._folder = Path(tempfile.mkdtemp(prefix="engine-", dir="/tmp"))
        self.socket_path = str(self._folder / "docker.sock")
        self.url = ""

    async def __aenter__(self) -> FakeDockerEngine:
        app = web.Application(middlewares=[self._middleware])
        add = app.router.add_route
        for prefix in (r"/v{api:[0-9]+\.[0-9]+}", ""):
            add("GET", prefix + "/services/{id}", self._inspect, name=f"inspect{prefix and '_v'}")
            add("POST", prefix + "/services/{id}/update", self._update, name=f"update{prefix and '_v'}")
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        await web.UnixSite(self._runner, self.socket_path).start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
        self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # wakes every scripted delay
        if self._runner is not None:
            await self._runner.cleanup()
        shutil.rmtree(self._folder, ignore_errors=True)

    # --- helpers for tests ----------------------------------------------------------------

    def add_service(
        self, name: str, *, replicas: int | None = 1, labels: dict[str, str] | None = None, image: str = "bulkocr:ocr"
    ) -> FakeService:
        """A service as `docker stack deploy` creates it (`replicas=None`: global mode)."""
        mode: dict[str, Any] = {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}}
        spec = {
            "Name": name,
            "Labels": {"com.docker.stack.namespace": "bulkocr", **(labels or {})},
            "TaskTemplate": {
                "ContainerSpec": {"Image": image, "Args": ["python", "-m", "bulkocr_ocr_worker"]},
                "Resources": {"Limits": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 3 << 30}},
                "Networks": [{"Target": "bulkocr_bulkocr"}],
                "ForceUpdate": 0,
                "Runtime": "container",
            },
            "Mode": mode,
            "EndpointSpec": {"Mode": "vip"},
        }
        stamp = _now()
        service = FakeService(uuid.uuid4().hex[:25], spec, self._next_index(), stamp, stamp)
        self.services[service.id] = service
        return service

    def service(self, name: str) -> FakeService:
        return next(s for s in self.services.values() if s.name == name)

    def replicas(self, name: str) -> int | None:
        return self.service(name).replicas

    def touch(self, name: str) -> None:
        """Another writer's update (a `docker service update`, a rolling update): same spec, new version."""
        self._write(self.service(name), copy.deepcopy(self.service(name).spec))

    def set_replicas(self, name: str, replicas: int) -> None:
        """Another writer's `docker service scale`."""
        spec = copy.deepcopy(self.service(name).spec)
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        self._write(self.service(name), spec)

    def race(self, times: int) -> Fault:
        return self.fail("update", times=times, race=True)

    def fail(self, route: Route, status: int | None = None, **options: Any) -> Fault:
        fault = Fault(route, status, **options)
        self.faults.append(fault)
        return fault

    def calls(self, route: Route | None = None) -> list[Call]:
        return [call for call in self.log if route is None or call.route == route]

    def updates_of(self, name: str) -> list[Call]:
        """The updates of the service that the Engine accepted."""
        service_id = self.service(name).id
        return [call for call in self.calls("update") if call.status == 200 and call.service_id == service_id]

    # --- the middleware: API version, log, faults -------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = (request.match_info.route.name or "unknown").removesuffix("_v")
        api = request.match_info.get("api")
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        fault = next((f for f in self.faults if f.route == route and f.used < f.times), None)
        if fault is not None:
            fault.used += 1
        found = self._find(request.match_info.get("id", ""))
        service_id = found.id if found else None
        call = Call(
            request.method, route, request.path, api, dict(request.query), parsed, fault, service_id, time.monotonic()
        )
        self.log.append(call)
        response = await self._answer(request, handler, api, fault)
        call.status = response.status
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, api: str | None, fault: Fault | None
    ) -> web.StreamResponse:
        refused = _refuse_version(api)
        if refused is not None:
            return refused
        if request.match_info.route.name is None:
            return error(404, "page not found")
        if fault is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay_s)
            if fault.race:
                service = self._find(request.match_info["id"])
                if service is not None:
                    self.touch(service.name)
            elif fault.status is not None:
                return error(fault.status, fault.message)
        return await handler(request)

    # --- the routes -------------------------------------------------------------------------

    async def _inspect(self, request: web.Request) -> web.Response:
        service = self._find(request.match_info["id"])
        if service is None:
            return error(404, f"service {request.match_info['id']} not found")
        return web.json_response(service.inspected())

    async def _update(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return error(400, f"unsupported Content-Type header ({request.content_type}): must be 'application/json'")
        try:
            spec = json.loads(await request.read())
        except ValueError as undecodable:
            return error(400, f"invalid JSON: {undecodable}")
        if not isinstance(spec, dict):
            return error(400, "invalid JSON: not a service spec")
        raw = request.query.get("version", "")
        if not re.fullmatch(r"[0-9]+", raw):
            return error(400, f"invalid service version '{raw}': strconv.ParseUint: parsing \"{raw}\": invalid syntax")
        spec = _converted(spec)
        refusal = _invalid(spec)
        if refusal is not None:
            return error(400, f"rpc error: code = InvalidArgument desc = {refusal}")
        service = self._find(request.match_info["id"])
        if service is None:
            return error(404, f"service {request.match_info['id']} not found")
        if spec["Mode"].keys() != service.spec["Mode"].keys():
            return error(501, "rpc error: code = Unimplemented desc = service mode change is not allowed")
        if spec["Name"] != service.name:
            return error(501, "rpc error: code = Unimplemented desc = renaming services is not supported")
        if int(raw) != service.version:
            return error(500, OUT_OF_SEQUENCE)
        self._write(service, spec)
        return web.json_response({"Warnings": None})

    # --- the store --------------------------------------------------------------------------

    def _find(self, key: str) -> FakeService | None:
        """By id, then by name, then by a unique id prefix, as the Engine looks a service up."""
        if not key:
            return None
        if key in self.services:
            return self.services[key]
        named = [s for s in self.services.values() if s.name == key]
        prefixed = [s for s in self.services.values() if s.id.startswith(key)]
        found = named or prefixed
        return found[0] if len(found) == 1 else None

    def _write(self, service: FakeService, spec: dict[str, Any]) -> None:
        service.previous_spec, service.spec = service.spec, spec
        service.version = self._next_index()
        service.updated_at = _now()

    def _next_index(self) -> int:
        # Raft's index moves with every write to the store (tasks too): never assume +1.
        self._writes += 1
        self._index += 1 + self._writes % 3
        return self._index


def _refuse_version(api: str | None) -> web.Response | None:
    if api is None:
        return None
    major, minor = (int(part) for part in api.split("."))
    if (major, minor) < MIN_API:
        return error(
            400,
            f"client version {api} is too old. Minimum supported API version is {_api(MIN_API)}, "
            "please upgrade your client to a newer version",
        )
    if (major, minor) > MAX_API:
        return error(400, f"client version {api} is too new. Maximum supported API version is {_api(MAX_API)}")
    return None


def _converted(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as moby converts it for swarmkit: no replica count means 1, no labels none."""
    converted = copy.deepcopy(spec)
    mode = converted.get("Mode") or {}
    if "Global" not in mode and (mode.get("Replicated") or {}).get("Replicas") is None:
        mode = {"Replicated": {"Replicas": 1}}
    converted["Mode"] = mode
    converted["Labels"] = converted.get("Labels") or {}
    return converted


def _invalid(spec: dict[str, Any]) -> str | None:
    """What swarmkit's validation says of a spec, or None."""
    if not spec.get("Name"):
        return "meta: name must be provided"
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec")
    if container is None:
        return "ContainerSpec: missing in service spec"
    if not container.get("Image"):
        return "ContainerSpec: image reference must be provided"
    return None
