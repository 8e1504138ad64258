"""What an operator and Swarm ask of every service, on its own port (`BULKOCR_OPS_PORT`):

- `/metrics`: the process's Prometheus metrics (`bulkocr.metrics` and each service's own);
- `/livez`: 200 while the service works; 503 once a loop it cannot do without has died, so
  Swarm's healthcheck replaces the task instead of leaving a process that does nothing;
- `/readyz`: 200 when it can do its work now: started (consuming, or serving HTTP), not
  draining, and every dependency it
  registered (nsqd, the database) answers; 503 with the reasons otherwise.

`run_service()` serves these for the whole life of the process; the runtime and the adapters
register what readiness depends on in `HEALTH`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[object]]
"""Raises (or times out) when the dependency cannot be used now."""


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_OPS_", extra="ignore")

    # Every container has its own address, so one port serves every service on Swarm;
    # `bulkocr up` gives each local process a free one (0: any free port).
    host: str = "0.0.0.0"  # noqa: S104  # Swarm's healthcheck and Prometheus reach the task's own address
    port: int = Field(default=9100, ge=0, le=65535)
    check_timeout_s: float = Field(default=2.0, gt=0, description="longest a readiness check may take")


@dataclass
class Health:
    checks: dict[str, Check] = field(default_factory=dict)
    started: bool = False
    draining: bool = False
    broken: str | None = None

    def depends_on(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def forget(self, name: str) -> None:
        self.checks.pop(name, None)

    def fail(self, reason: str) -> None:
        """The service can no longer do its work: liveness fails from now on."""
        if self.broken is None:
            self.broken = reason
            log.error("service_broken", reason=reason)

    async def unready(self, timeout_s: float) -> dict[str, str]:
        """Why the service cannot take work now; empty when it can."""
        reasons: dict[str, str] = {}
        if not self.started:
            reasons["service"] = "starting"
        elif self.draining:
            reasons["service"] = "draining"
        names = list(self.checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(self.checks[name](), timeout_s) for name in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, TimeoutError):
                reasons[name] = f"no answer within {timeout_s:g} s"
            elif isinstance(result, BaseException):
                reasons[name] = f"{type(result).__name__}: {result}"[:300]
        return reasons


HEALTH = Health()
"""The process's health: one per process, like the Prometheus registry."""


def ops_app(health: Health, settings: OpsSettings) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def livez(request: web.Request) -> web.Response:
        if health.broken is not None:
            return web.json_response({"status": "broken", "reason": health.broken}, status=503)
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        reasons = await health.unready(settings.check_timeout_s)
        if reasons:
            return web.json_response({"status": "unready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready", "checks": sorted(health.checks)})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app


@contextlib.asynccontextmanager
async def ops_server(settings: OpsSettings, health: Health = HEALTH) -> AsyncIterator[int]:
    """Serve the ops routes while inside; yields the port they answer on."""
    runner = web.AppRunner(ops_app(health, settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        port = int(runner.addresses[0][1])
        log.info("ops_listening", port=port)
        yield port
    finally:
        await runner.cleanup()
