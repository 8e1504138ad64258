"""A thin typed client for Archipelago's one machine API: Drupal core JSON:API with HTTP Basic.

Every call is retried on answers that may pass (429, 5xx, a lost connection, a timeout),
after `Retry-After` where the server sends one (429, 503) and with exponential backoff
otherwise. Answers that cannot pass raise at once, by class:

- `AccessDenied` (401, 403, 405): stop everything. Archipelago locks an account after 10
  failed logins in 6 hours, so a refused login is never tried again.
- `Rejected` (400, 413, 415, 422, ...): this document cannot be pushed as it is.
- `Unavailable`: the retries ran out; a later push may succeed.

A create is not idempotent, so a create whose answer was lost (504, timeout, 5xx) is never
sent again blindly: `upsert_node` looks the object up first (see `MaybeCreated`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from bulkocr.errors import BulkOcrError

log = structlog.get_logger(__name__)

JSONAPI = "application/vnd.api+json"
OCTET_STREAM = "application/octet-stream"
AMI_SET = "ami_set_entity--ami_set_entity"

_TRANSIENT = frozenset({429, 500, 502, 503, 504})
_DENIED = frozenset({401, 403, 405})
_HTML_TITLE = re.compile(rb"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
_MAX_DETAIL = 300

Sleep = Callable[[float], Awaitable[None]]


class ArchipelagoError(BulkOcrError):
    """Archipelago refused a request or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AccessDenied(ArchipelagoError):
    """The credentials or their permissions were refused: stop, and never retry (flood lock)."""


class Rejected(ArchipelagoError):
    """Archipelago will not take this request as it is; retrying cannot help."""


class Unavailable(ArchipelagoError):
    """Archipelago did not answer usefully within the retries; a later push may succeed."""


class Conflict(ArchipelagoError):
    """A create named a UUID that already exists (409)."""


class MaybeCreated(ArchipelagoError):
    """A create was sent but its answer was lost: it may have been committed."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_base_s: float = 5.0
    backoff_max_s: float = 60.0
    # A longer Retry-After than this is capped: a push should not stall for hours.
    max_retry_after_s: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt + 1`: base, 2 x base, 4 x base..., capped."""
        return float(min(self.backoff_base_s * 2**attempt, self.backoff_max_s))


@dataclass(frozen=True)
class UploadedFile:
    fid: int
    uuid: str
    filename: str
    mime: str


@dataclass(frozen=True)
class Node:
    uuid: str
    nid: int
    bundle: str
    title: str
    metadata: str


@dataclass(frozen=True)
class AmiSet:
    uuid: str
    id: int


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds: either a number of seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def error_detail(answer: Answer) -> str:
    """What went wrong, from a JSON:API error document or an nginx HTML page (a 413 or 504
    from the proxy is HTML, never JSON)."""
    try:
        errors = answer.json().get("errors") or []
        detail = str(errors[0].get("detail") or errors[0].get("title"))
    except (ValueError, AttributeError, IndexError, TypeError):
        match = _HTML_TITLE.search(answer.body)
        detail = match.group(1).decode(errors="replace") if match else answer.body[:100].decode(errors="replace")
    return " ".join(detail.split())[:_MAX_DETAIL] or f"HTTP {answer.status}"


def refusal(method: str, path: str, answer: Answer) -> ArchipelagoError:
    """The exception that a final (not retried) answer stands for."""
    detail = error_detail(answer)
    where = f"{method} {path}"
    if answer.status in _DENIED:
        return AccessDenied(f"Archipelago refused {where} ({answer.status}): {detail}", status=answer.status)
    if answer.status == 409:
        return Conflict(f"{where}: {detail}", status=409)
    if answer.status == 413:
        return Rejected(f"the file is larger than Archipelago accepts (413 at {where}: {detail})", status=413)
    if answer.status >= 500 or answer.status == 429:
        return Unavailable(f"Archipelago answered {answer.status} to {where}: {detail}", status=answer.status)
    return Rejected(f"Archipelago rejected {where} ({answer.status}): {detail}", status=answer.status)


def _node_from(document: Any, bundle: str) -> Node:
    data = document["data"]
    attributes = data["attributes"]
    metadata = attributes.get("field_descriptive_metadata")
    if isinstance(metadata, Mapping):
        # Some serializers expand the Strawberry Field to {"value": "<json>"}.
        metadata = metadata.get("value")
    return Node(
        uuid=data["id"],
        nid=int(attributes["drupal_internal__nid"]),
        bundle=bundle,
        title=str(attributes.get("title") or ""),
        metadata=metadata if isinstance(metadata, str) else json.dumps(metadata),
    )


def _file_from(data: Any) -> UploadedFile:
    attributes = data["attributes"]
    return UploadedFile(
        fid=int(attributes["drupal_internal__fid"]),
        uuid=str(data["id"]),
        filename=str(attributes.get("filename") or ""),
        mime=str(attributes.get("filemime") or OCTET_STREAM),
    )


class ArchipelagoClient:
    """Archipelago's JSON:API as one user; bodies in memory, one document at a time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        authorization: SecretStr,
        policy: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._authorization = authorization
        self._policy = policy
        self._sleep = sleep

    # --- the exchange, with retries ---------------------------------------------------

    async def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        # The credentials stay a SecretStr until this header is built; nothing logs headers.
        all_headers = {"Accept": JSONAPI, **headers, "Authorization": self._authorization.get_secret_value()}
        async with self._session.request(method, f"{self._base}{path}", data=body, headers=all_headers) as response:
            return Answer(response.status, dict(response.headers), await response.read())

    async def _call(
        self,
        method: str,
        path: str,
        *,
        ok: frozenset[int],
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        creates: bool = False,
    ) -> Answer:
        """Send until an answer in `ok`; raise on a final one or when the retries run out.
        With `creates`, a lost answer raises `MaybeCreated` instead of sending again."""
        for attempt in range(self._policy.retries + 1):
            try:
                answer = await self._send(method, path, body, headers or {})
            except (aiohttp.ClientError, TimeoutError) as error:
                cause = f"{type(error).__name__}: {error}".rstrip(": ")
                if creates:
                    raise MaybeCreated(f"{method} {path}: no answer ({cause})") from error
                failure: ArchipelagoError = Unavailable(f"{method} {path}: no answer ({cause})")
                delay = self._policy.backoff(attempt)
            else:
                if answer.status in ok:
                    return answer
                failure = refusal(method, path, answer)
                if creates and answer.status >= 500:
                    raise MaybeCreated(str(failure), status=answer.status)
                if not isinstance(failure, Unavailable):
                    raise failure
                delay = self._delay(answer, attempt)
            if attempt == self._policy.retries:
                raise failure
            log.warning("archipelago_retry", method=method, path=path, error=str(failure), delay_s=delay)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")

    def _delay(self, answer: Answer, attempt: int) -> float:
        if answer.status in (429, 503):
            wait = retry_after_s(answer.headers.get("Retry-After"))
            if wait is not None:
                return min(wait, self._policy.max_retry_after_s)
        return self._policy.backoff(attempt)

    # --- the API ----------------------------------------------------------------------

    async def preflight(self) -> None:
        """Check the credentials once before writing anything. The entry point answers 200
        to anyone; only an authenticated user gets `meta.links.me`."""
        answer = await self._call("GET", "/jsonapi", ok=frozenset({200}))
        try:
            me = answer.json().get("meta", {}).get("links", {}).get("me")
        except (ValueError, AttributeError) as error:
            raise Unavailable(f"GET /jsonapi did not answer JSON:API: {error}") from error
        if not me:
            raise AccessDenied("Archipelago did not accept the credentials (GET /jsonapi shows no user)")

    async def upload_file(self, bundle: str, filename: str, data: bytes) -> UploadedFile:
        """Upload one file as a temporary file of `bundle`'s file drop field (Archipelago
        deletes it after 6 hours unless an object references it by then)."""
        headers = {"Content-Type": OCTET_STREAM, "Content-Disposition": f'file; filename="{filename}"'}
        path = f"/jsonapi/node/{bundle}/field_file_drop"
        answer = await self._call("POST", path, ok=frozenset({200, 201}), body=data, headers=headers)
        return _file_from(answer.json()["data"])

    async def get_node(self, bundle: str, object_id: str) -> Node | None:
        answer = await self._call("GET", f"/jsonapi/node/{bundle}/{object_id}", ok=frozenset({200, 404}))
        return None if answer.status == 404 else _node_from(answer.json(), bundle)

    async def create_node(self, bundle: str, object_id: str, attributes: Mapping[str, Any]) -> Node:
        answer = await self._call(
            "POST",
            f"/jsonapi/node/{bundle}",
            ok=frozenset({201}),
            body=_resource(f"node--{bundle}", object_id, attributes),
            headers={"Content-Type": JSONAPI},
            creates=True,
        )
        return _node_from(answer.json(), bundle)

    async def patch_node(self, bundle: str, object_id: str, attributes: Mapping[str, Any]) -> Node:
        answer = await self._call(
            "PATCH",
            f"/jsonapi/node/{bundle}/{object_id}",
            ok=frozenset({200}),
            body=_resource(f"node--{bundle}", object_id, attributes),
            headers={"Content-Type": JSONAPI},
        )
        return _node_from(answer.json(), bundle)

    async def upsert_node(self, bundle: str, object_id: str, attributes: Mapping[str, Any]) -> Node:
        """Create the object, or update it if it exists: GET, then PATCH or POST. A 409 on
        the POST means it exists after all (PATCH); a lost answer to the POST is checked
        with a GET before anything is sent again."""
        sent_create = False
        for attempt in range(self._policy.retries + 1):
            found = await self.get_node(bundle, object_id)
            if found is not None:
                # Ours if our create was committed before its answer was lost: done.
                return found if sent_create else await self.patch_node(bundle, object_id, attributes)
            try:
                return await self.create_node(bundle, object_id, attributes)
            except Conflict:
                return await self.patch_node(bundle, object_id, attributes)
            except MaybeCreated as lost:
                sent_create = True
                log.warning("archipelago_create_unconfirmed", object_id=object_id, error=str(lost))
                await self._sleep(self._policy.backoff(attempt))
        raise Unavailable(f"could not create {bundle} {object_id}: no answer after {self._policy.retries + 1} tries")

    async def get_ami_set(self, set_id: str) -> AmiSet | None:
        path = f"/jsonapi/ami_set_entity/ami_set_entity/{set_id}"
        answer = await self._call("GET", path, ok=frozenset({200, 404}))
        return None if answer.status == 404 else _ami_set_from(answer.json())

    async def create_ami_set(self, set_id: str, name: str, set_json: str) -> AmiSet:
        """Stage an AMI set; a curator still has to process it (there is no API for that)."""
        attributes = {"name": name, "set": {"value": set_json}, "status": "READY"}
        try:
            answer = await self._call(
                "POST",
                "/jsonapi/ami_set_entity/ami_set_entity",
                ok=frozenset({201}),
                body=_resource(AMI_SET, set_id, attributes),
                headers={"Content-Type": JSONAPI},
                creates=True,
            )
        except (Conflict, MaybeCreated):
            found = await self.get_ami_set(set_id)
            if found is None:
                raise
            return found
        return _ami_set_from(answer.json())

    async def upload_ami_csv(self, set_id: str, filename: str, data: bytes) -> UploadedFile:
        headers = {"Content-Type": OCTET_STREAM, "Content-Disposition": f'file; filename="{filename}"'}
        path = f"/jsonapi/ami_set_entity/ami_set_entity/{set_id}/source_data"
        answer = await self._call("POST", path, ok=frozenset({200, 201}), body=data, headers=headers)
        files = answer.json()["data"]
        return _file_from(files[-1] if isinstance(files, list) else files)


def _resource(resource_type: str, resource_id: str, attributes: Mapping[str, Any]) -> bytes:
    return json.dumps({"data": {"type": resource_type, "id": resource_id, "attributes": dict(attributes)}}).encode()


def _ami_set_from(document: Any) -> AmiSet:
    data = document["data"]
    return AmiSet(uuid=str(data["id"]), id=int(data["attributes"]["drupal_internal__id"]))
