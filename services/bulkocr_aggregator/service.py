"""Aggregator: page outcomes and document plans in, per-job and per-node progress out.

Every write is idempotent (a redelivered result counts once), and progress is recounted
from the stored page outcomes after each write, serialised per job in this process. A
periodic pass recounts unfinished jobs and sweeps quiet ones (work lost with nsqd is
published again), another removes finished jobs past the retention. When a job finishes,
`job.completed` is published once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import (
    DOCUMENT_PLANNED,
    JOB_CANCEL,
    JOB_RETRY,
    NODE_HEARTBEAT,
    PAGE_DONE,
    PAGE_FAILED,
    PAGE_RETRYING,
    DocumentPlanned,
    JobCancel,
    JobRetry,
    NodeHeartbeat,
    PageDone,
    PageFailed,
    PageRetrying,
)
from bulkocr.log import configure_logging
from bulkocr.mongo import JobStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher, consuming
from bulkocr.runtime import shutdown_event
from bulkocr.settings import BlobSettings, LogSettings, MongoSettings, NsqSettings, load
from bulkocr_aggregator.jobs import Progress
from bulkocr_aggregator.sweeper import Retention, Sweeper

log = structlog.get_logger(__name__)

CHANNEL = "aggregator"


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_AGGREGATOR_", extra="ignore")

    max_in_flight: int = Field(default=20, gt=0)
    recount_interval_s: float = Field(default=10.0, gt=0)
    # A job with no new page outcome for this long is swept once the page queue is empty...
    sweep_idle_s: float = Field(default=120.0, gt=0)
    # ...or after this long whatever the queue holds.
    sweep_max_idle_s: float = Field(default=1800.0, gt=0)
    retention_s: float = Field(default=24 * 3600.0, gt=0, description="finished jobs are kept this long")
    retention_interval_s: float = Field(default=3600.0, gt=0)


async def handle_planned(planned: DocumentPlanned, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    fields: dict[str, Any] = {"pages": planned.pages, "error": planned.error}
    if planned.filename is not None:
        fields["filename"] = planned.filename
    if planned.members:
        fields["members"] = [member.doc_id for member in planned.members]
    if planned.duplicate_of:
        fields["duplicate_of"] = planned.duplicate_of
    async with progress.lock(planned.job_id):
        await store.plan_document(planned.job_id, planned.doc_id, fields)
        for member in planned.members:
            await store.plan_document(planned.job_id, member.doc_id, {}, filename=member.filename)
    await progress.refresh(planned.job_id)


async def handle_done(done: PageDone, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    async with progress.lock(done.job_id):
        if await store.record_page_done(done):
            log.info("page_recorded", status="done")
    await progress.refresh(done.job_id)


async def handle_failed(failed: PageFailed, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    async with progress.lock(failed.job_id):
        if await store.record_page_failed(failed):
            log.info("page_recorded", status="failed", error=failed.error)
    await progress.refresh(failed.job_id)


async def handle_retrying(retrying: PageRetrying, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    async with progress.lock(retrying.job_id):
        await store.record_page_retrying(retrying)


async def handle_heartbeat(beat: NodeHeartbeat, delivery: Delivery, *, store: JobStore) -> None:
    await store.record_heartbeat(beat)


async def handle_cancel(cancel: JobCancel, delivery: Delivery, *, progress: Progress) -> None:
    await progress.cancel(cancel.job_id)


async def handle_retry(retry: JobRetry, delivery: Delivery, *, progress: Progress) -> None:
    await progress.replay_failed(retry.job_id)


async def every(interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `work` every interval; a failed round is logged and the next one tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as error:  # noqa: BLE001  # the next round tries again
            log.warning(f"{name}_failed", error=f"{type(error).__name__}: {error}")


async def run(settings: AggregatorSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    stop = shutdown_event()
    async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher, aiohttp.ClientSession() as session:
        store = JobStore(db)
        await store.ensure_indexes()
        progress = Progress(store, publisher)
        sweeper = Sweeper(store, publisher, progress, session, nsq, settings.sweep_idle_s, settings.sweep_max_idle_s)
        retention = Retention(store, make_blob_store(blob, db), settings.retention_s)
        consumers: list[tuple[Any, Any]] = [
            (DOCUMENT_PLANNED, functools.partial(handle_planned, store=store, progress=progress)),
            (PAGE_DONE, functools.partial(handle_done, store=store, progress=progress)),
            (PAGE_FAILED, functools.partial(handle_failed, store=store, progress=progress)),
            (PAGE_RETRYING, functools.partial(handle_retrying, store=store, progress=progress)),
            (NODE_HEARTBEAT, functools.partial(handle_heartbeat, store=store)),
            (JOB_CANCEL, functools.partial(handle_cancel, progress=progress)),
            (JOB_RETRY, functools.partial(handle_retry, progress=progress)),
        ]
        async with contextlib.AsyncExitStack() as stack:
            for topic, handler in consumers:
                await stack.enter_async_context(
                    consuming(
                        topic, CHANNEL, handler, publisher=publisher, settings=nsq, max_in_flight=settings.max_in_flight
                    )
                )

            async def recount_and_sweep() -> None:
                await progress.recount_unfinished()
                await sweeper.sweep()

            loops = [
                asyncio.create_task(every(settings.recount_interval_s, recount_and_sweep, "recount")),
                asyncio.create_task(every(settings.retention_interval_s, retention.remove_expired, "retention")),
            ]
            log.info("service_started")
            await stop.wait()
            for loop in loops:
                loop.cancel()


def main() -> None:
    configure_logging(load(LogSettings), service="aggregator")
    asyncio.run(run(load(AggregatorSettings), load(NsqSettings), load(MongoSettings), load(BlobSettings)))
