"""A webhook receiver for tests: an aiohttp server on loopback that keeps every request it
gets (headers and raw body) and answers as scripted, to inject the faults a real receiver
shows: an error status some number of times, a hang past the sender's timeout, a final 410.

Faults are taken in order, one per request, per path; once a path's script is used up it
answers `default_status`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Fault:
    """Answer `status`, after hanging `hang_s` seconds (or until the receiver closes)."""

    status: int = 500
    hang_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None


@dataclass
class WebhookReceiver:
    default_status: int = 204
    requests: list[Received] = field(default_factory=list)
    _scripts: defaultdict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    def script(self, path: str, *faults: Fault) -> None:
        self._scripts[path].extend(faults)

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        script = self._scripts[request.path]
        fault = script.popleft() if script else None
        status = fault.status if fault else self.default_status
        if fault and fault.hang_s:
            # Hangs, answering nothing, until the sender gave up (or the test ends).
            self.requests.append(Received(request.path, dict(request.headers), body, None))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.hang_s)
            return web.Response(status=status)
        self.requests.append(Received(request.path, dict(request.headers), body, status))
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
