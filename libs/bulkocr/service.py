"""One way to run a service: a service is its settings, its subscriptions and its loops.

`serve()` consumes each subscription, runs each loop, and on SIGTERM (Swarm's stop) or
SIGINT drains: no new messages, in-flight handlers finish or are given back, then the loops
stop. `run_service()` is every service's `main()`:
logging configured from the environment, the ops routes (`/metrics`, `/livez`, `/readyz`,
`bulkocr.ops`) served for the life of the process, then the service's coroutine on a fresh
loop. Readiness follows nsqd (and the database, registered by `connect_mongo`) and turns false
while draining; liveness fails once a background loop the service needs has died.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from pydantic_settings import BaseSettings

from bulkocr.contracts import Topic
from bulkocr.log import configure_logging
from bulkocr.nsq import GiveUp, Handler, NsqPublisher, consuming, nsqd_check
from bulkocr.ops import HEALTH, OpsSettings, ops_server
from bulkocr.runtime import shutdown_event
from bulkocr.settings import LogSettings, NsqSettings, load

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Subscription:
    """A handler for one topic on a channel; `nsq` overrides the service's retry settings."""

    topic: Topic[Any]
    channel: str
    handler: Handler[Any]
    max_in_flight: int = 1
    on_give_up: GiveUp[Any] | None = None
    on_retry: GiveUp[Any] | None = None
    nsq: NsqSettings | None = None


@dataclass(frozen=True)
class Every:
    """Work run every `interval_s`; a failed round is logged as `<name>_failed`, the next tries again."""

    interval_s: float
    work: Callable[[], Awaitable[object]]
    name: str


async def every(interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as error:  # noqa: BLE001  # the next round tries again
            log.warning(f"{name}_failed", error=f"{type(error).__name__}: {error}")


async def serve(
    *,
    nsq: NsqSettings,
    publisher: NsqPublisher | None,
    subscriptions: Sequence[Subscription],
    background: Sequence[Coroutine[Any, Any, object]] = (),
    periodic: Sequence[Every] = (),
    stop: asyncio.Event | None = None,
    drained: Callable[[], Awaitable[object]] | None = None,
    **started: object,
) -> None:
    """Consume and run until `stop` (SIGTERM or SIGINT by default). `background` runs from the
    start (a dispatcher, heartbeats); `drained` runs once the consumers have drained, before
    the loops stop (the aggregator writes the progress they moved). A service that only runs
    loops (the autoscaler) publishes nothing and passes no publisher."""
    stop = stop or shutdown_event()
    tasks = [asyncio.create_task(work) for work in background]
    for task in tasks:
        task.add_done_callback(_fails_health)
    tasks += [asyncio.create_task(every(loop.interval_s, loop.work, loop.name)) for loop in periodic]
    try:
        async with contextlib.AsyncExitStack() as consumers:
            session = await consumers.enter_async_context(aiohttp.ClientSession())
            HEALTH.depends_on("nsqd", nsqd_check(session, nsq))
            consumers.callback(HEALTH.forget, "nsqd")
            for subscription in subscriptions:
                if publisher is None:
                    raise ValueError("consumers dead-letter through a publisher: pass one")
                consumer = consuming(
                    subscription.topic,
                    subscription.channel,
                    subscription.handler,
                    publisher=publisher,
                    settings=subscription.nsq or nsq,
                    max_in_flight=subscription.max_in_flight,
                    on_give_up=subscription.on_give_up,
                    on_retry=subscription.on_retry,
                )
                await consumers.enter_async_context(consumer)
            HEALTH.started = True
            log.info("service_started", **started)
            await stop.wait()
            HEALTH.draining = True
        if drained is not None:
            await drained()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log.info("service_stopped")


def _fails_health(task: asyncio.Task[Any]) -> None:
    """A background loop (a dispatcher, heartbeats) runs for the life of the service: one that
    ends with an error leaves a process that looks alive but does nothing."""
    if not task.cancelled() and task.exception() is not None:
        HEALTH.fail(f"{task.get_coro().__qualname__} stopped: {task.exception()!r}")  # type: ignore[union-attr]


def run_service(name: str, run: Callable[..., Coroutine[Any, Any, None]], *settings: type[BaseSettings]) -> None:
    """A service's `main()`: JSON logs named after it, then `run` with each settings class
    loaded (from the environment and secret files; a bad value is refused, and logged),
    with the ops routes answering meanwhile."""
    configure_logging(load(LogSettings), service=name)
    loaded = [load(cls) for cls in settings]
    ops = load(OpsSettings)

    async def main() -> None:
        async with ops_server(ops):
            await run(*loaded)

    asyncio.run(main())
