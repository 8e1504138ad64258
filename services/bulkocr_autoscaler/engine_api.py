"""The two Docker Engine API calls that scale a Swarm service, over aiohttp.

`GET /v<api>/services/<name or id>` answers the service with its `Version.Index` and `Spec`;
`POST /v<api>/services/<id>/update?version=<index>` takes the whole `Spec` back with
`Mode.Replicated.Replicas` changed. A version that another writer (a `docker service
update`, a rolling update, a second autoscaler) has moved on is refused with 500 and
"rpc error: code = Unknown desc = update out of sequence": the service is read again and the
update tried again, a few times, with jitter. The Engine is reached on its unix socket, or
over TCP (a socket proxy, or the Engine itself with TLS and a client certificate).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from bulkocr_autoscaler.settings import UNIX_SCHEME, AutoscalerSettings

log = structlog.get_logger(__name__)

OUT_OF_SEQUENCE = "update out of sequence"
# What the client reads of an error body: enough for the Engine's one-line messages.
MAX_ERROR_CHARS = 300


class EngineError(Exception):
    """The Engine refused a call, or answered something this client cannot use."""

    def __init__(self, call: str, status: int, message: str) -> None:
        super().__init__(f"{call}: {status} {message}")
        self.status = status
        self.message = message


class VersionConflict(EngineError):
    """The service changed since it was read (the Engine's "update out of sequence")."""


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    version: int
    spec: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.spec.get("Labels") or {}
        return labels

    @property
    def replicas(self) -> int | None:
        """The replica count, or None for a service Swarm does not scale (global mode, jobs)."""
        replicated = (self.spec.get("Mode") or {}).get("Replicated")
        if replicated is None:
            return None
        return int(replicated.get("Replicas", 1))  # the Engine's default when a spec names none


@dataclass(frozen=True)
class Scaled:
    previous: int
    replicas: int
    conflicts: int  # updates refused because the service had changed, then tried again
    changed: bool  # False: another writer had already set this count


class EngineApi:
    """Reads and scales Swarm services through the Engine API under one pinned version."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_version: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        self._session = session
        self._base = f"{base_url.rstrip('/')}/v{api_version}"
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def inspect(self, service: str) -> Service:
        """The service by name or id; `EngineError` (404) when there is none."""
        call = f"GET /services/{service}"
        async with self._session.get(f"{self._base}/services/{service}") as response:
            body = await _answer(call, response)
        try:
            return Service(str(body["ID"]), str(body["Spec"]["Name"]), int(body["Version"]["Index"]), body["Spec"])
        except (KeyError, TypeError, ValueError) as error:
            raise EngineError(call, response.status, f"unexpected answer ({error!r} missing)") from None

    async def update(self, service: Service, spec: dict[str, Any]) -> list[str]:
        """Replace the service's spec as of `service.version`; the Engine's warnings."""
        call = f"POST /services/{service.id}/update"
        url = f"{self._base}/services/{service.id}/update"
        async with self._session.post(url, params={"version": str(service.version)}, json=spec) as response:
            body = await _answer(call, response)
        warnings: list[str] = (body or {}).get("Warnings") or []
        return warnings

    async def scale(self, service: Service, replicas: int) -> Scaled:
        """Set the replica count of `service` (as read for the decision), reading it again
        after each conflict; the last `VersionConflict` is raised once the attempts are spent."""
        first = _replicas_of(service)
        conflicts = 0
        while True:
            if _replicas_of(service) == replicas:
                return Scaled(first, replicas, conflicts, changed=False)
            spec = copy.deepcopy(service.spec)
            spec["Mode"]["Replicated"]["Replicas"] = replicas
            try:
                for warning in await self.update(service, spec):
                    log.warning("engine_warning", swarm_service=service.name, warning=warning)
                return Scaled(first, replicas, conflicts, changed=True)
            except VersionConflict:
                conflicts += 1
                if conflicts >= self._attempts:
                    raise
                log.info("autoscale_conflict", swarm_service=service.name, version=service.version, conflicts=conflicts)
            # Jittered, so two writers that collided do not collide again.
            await asyncio.sleep(self._backoff_s * conflicts * random.uniform(0.5, 1.5))  # noqa: S311  # not security
            service = await self.inspect(service.id)


def _replicas_of(service: Service) -> int:
    replicas = service.replicas
    if replicas is None:
        raise EngineError(f"scale {service.name}", 0, "not a replicated service (global mode or a job)")
    return replicas


async def _answer(call: str, response: aiohttp.ClientResponse) -> Any:
    """The JSON body of a 2xx answer; otherwise `EngineError` with the Engine's message."""
    text = await response.text(errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
        if response.status < 300:
            raise EngineError(call, response.status, f"not JSON: {text[:MAX_ERROR_CHARS]!r}") from None
    if response.status < 300:
        return body
    found = body.get("message") if isinstance(body, dict) else None
    message = str(found) if found else (text.strip()[:MAX_ERROR_CHARS] or response.reason or "")
    kind = VersionConflict if OUT_OF_SEQUENCE in message else EngineError
    raise kind(call, response.status, message)


def base_url(settings: AutoscalerSettings) -> str:
    """The URL requests are made to (the host part is not used over a unix socket)."""
    host = settings.docker_host
    if host.startswith(UNIX_SCHEME):
        return "http://docker"
    address = host.split("://", 1)[1]
    return f"{'https' if settings.uses_tls else 'http'}://{address}"


def tls_context(settings: AutoscalerSettings) -> ssl.SSLContext:
    """Verify the Engine against the CA (the system's if none) and show our certificate."""
    context = ssl.create_default_context(cafile=settings.docker_tls_ca)
    if settings.docker_tls_cert is not None and settings.docker_tls_key is not None:
        context.load_cert_chain(settings.docker_tls_cert, settings.docker_tls_key)
    return context


def connector(settings: AutoscalerSettings) -> aiohttp.BaseConnector:
    if settings.docker_host.startswith(UNIX_SCHEME):
        return aiohttp.UnixConnector(path=settings.docker_host.removeprefix(UNIX_SCHEME))
    return aiohttp.TCPConnector(ssl=tls_context(settings) if settings.uses_tls else False)


@asynccontextmanager
async def engine_api(settings: AutoscalerSettings, *, backoff_s: float = 0.2) -> AsyncIterator[EngineApi]:
    """An `EngineApi` on its own connection pool, closed on leaving."""
    timeout = aiohttp.ClientTimeout(total=settings.docker_timeout_s)
    async with aiohttp.ClientSession(connector=connector(settings), timeout=timeout) as session:
        yield EngineApi(
            session,
            base_url(settings),
            settings.docker_api_version,
            attempts=settings.update_attempts,
            backoff_s=backoff_s,
        )
