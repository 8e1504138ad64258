"""Autoscaler: scales the OCR workers' Swarm service to the pages waiting for them.

Every `BULKOCR_AUTOSCALER_INTERVAL_S` one round: the backlog of `bulkocr.page` on the
workers' channel (queued, in flight and deferred, over every nsqd), the service as the
Docker Engine API has it (replicas, labels, version), a decision (`decision.decide`), and
the new replica count written back unless in dry run. Each decision is logged as
`autoscale_decision` and exported as metrics (`metrics`). A round that fails (nsqd or the
Engine unreachable, labels that make no sense) is logged as `autoscale_failed` with its
stage, counted, and changes nothing; the next round tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import structlog

from bulkocr.contracts import OCR_CHANNEL, PAGE_BATCH
from bulkocr.nsq import backlog
from bulkocr.service import Every, run_service, serve
from bulkocr.settings import NsqSettings
from bulkocr_autoscaler import metrics
from bulkocr_autoscaler.decision import Decision, decide
from bulkocr_autoscaler.engine_api import EngineApi, Service, engine_api
from bulkocr_autoscaler.labels import OPT_IN, policy_from_labels
from bulkocr_autoscaler.settings import AutoscalerSettings

log = structlog.get_logger(__name__)

# A round never waits longer than this on nsqd's HTTP API.
STATS_TIMEOUT_S = 10.0


class Autoscaler:
    """The rounds, and what they remember between them: when the replicas were last changed."""

    def __init__(
        self,
        settings: AutoscalerSettings,
        nsq: NsqSettings,
        session: aiohttp.ClientSession,
        engine: EngineApi,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._nsq = nsq
        self._session = session
        self._engine = engine
        self._clock = clock
        self._defaults = settings.default_policy()
        # Only this process's own changes: after a restart the cooldowns start as passed.
        self._last_change: float | None = None
        self._skipped: str | None = None

    async def round(self) -> Decision | None:
        """One round; the decision, or None when the round failed or the service is left alone."""
        stage: metrics.Stage = "backlog"
        try:
            pages = await backlog(self._session, self._nsq, PAGE_BATCH.name, OCR_CHANNEL)
            metrics.BACKLOG.set(pages)
            stage = "inspect"
            service = await self._engine.inspect(self._settings.service)
            stage = "policy"
            decision = self._decide(pages, service)
            stage = "scale"
            if decision is not None and decision.desired != service.replicas and not self._settings.dry_run:
                await self._scale(service, decision.desired)
        except Exception as error:  # noqa: BLE001  # a failed round changes nothing; the next one tries again
            metrics.failed(stage)
            log.warning("autoscale_failed", stage=stage, swarm_service=self._settings.service, error=_describe(error))
            return None
        return decision

    def _decide(self, pages: int, service: Service) -> Decision | None:
        policy = policy_from_labels(service.labels, self._defaults)
        current = service.replicas
        if policy is None:
            self._skip(service, f'label {OPT_IN} is not "true"')
            return None
        if current is None:
            self._skip(service, "not a replicated service (global mode or a job)")
            return None
        self._skipped = None
        decision = decide(pages, current, policy, now=self._clock(), last_change=self._last_change)
        metrics.observed(pages, current, decision.desired)
        log.info(
            "autoscale_decision",
            swarm_service=service.name,
            backlog=pages,
            current=current,
            desired=decision.desired,
            reason=decision.reason,
            dry_run=self._settings.dry_run,
        )
        return decision

    async def _scale(self, service: Service, replicas: int) -> None:
        scaled = await self._engine.scale(service, replicas)
        self._last_change = self._clock()
        if scaled.changed:
            metrics.scaled(scaled.previous, scaled.replicas)
        log.info(
            "autoscale_scaled" if scaled.changed else "autoscale_already_scaled",
            swarm_service=service.name,
            previous=scaled.previous,
            replicas=scaled.replicas,
            conflicts=scaled.conflicts,
        )

    def _skip(self, service: Service, why: str) -> None:
        """Say once (then at debug) that the service is left alone, and why."""
        level = log.debug if why == self._skipped else log.info
        level("autoscale_skipped", swarm_service=service.name, why=why)
        self._skipped = why


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def run(
    settings: AutoscalerSettings, nsq: NsqSettings, *, stop: asyncio.Event | None = None, engine_backoff_s: float = 0.2
) -> None:
    """Run rounds until `stop` (SIGTERM or SIGINT by default)."""
    timeout = aiohttp.ClientTimeout(total=STATS_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        engine_api(settings, backoff_s=engine_backoff_s) as engine,
    ):
        autoscaler = Autoscaler(settings, nsq, session, engine)
        await serve(
            nsq=nsq,
            publisher=None,
            subscriptions=[],
            periodic=[Every(settings.interval_s, autoscaler.round, "autoscale")],
            stop=stop,
            swarm_service=settings.service,
            dry_run=settings.dry_run,
            docker_host=settings.docker_host,
        )


def main() -> None:
    run_service("autoscaler", run, AutoscalerSettings, NsqSettings)
