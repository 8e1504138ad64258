"""Aggregator: the coordinator of every running job.

It takes submitted jobs, hands their documents to ingest and their pages to OCR a window
at a time (so a small job is never stuck behind a big one), stores page outcomes and
document plans (idempotent: a redelivered result counts once), and keeps per-job and
per-node progress in memory, written back coalesced. Timers check the tallies against a
recount, sweep quiet jobs (work lost with nsqd is handed out again) and remove finished
jobs past the retention. When a job finishes, `job.completed` is published once. It also
keeps every dead letter in the database (`dead_letters.py`) for an operator to act on.
"""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import (
    AGGREGATOR_CHANNEL,
    DOCUMENT_PLANNED,
    JOB_CANCEL,
    JOB_RETRY,
    JOB_SUBMITTED,
    NODE_HEARTBEAT,
    PAGE_FAILED,
    PAGE_RETRYING,
    PAGES_DONE,
    PAGES_READY,
    DocumentPlanned,
    JobCancel,
    JobRetry,
    JobSubmitted,
    NodeHeartbeat,
    PageFailed,
    PageRetrying,
    PagesDone,
    PagesReady,
    Topic,
)
from bulkocr.mongo import AggregatorJobStore, DeadLetterStore, connect_mongo
from bulkocr.nsq import Delivery, Handler, NsqPublisher
from bulkocr.service import Every, Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings, load
from bulkocr_aggregator import metrics
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_aggregator.dead_letters import keeper_subscriptions
from bulkocr_aggregator.state import Windows
from bulkocr_aggregator.sweeper import Retention, Sweeper
from bulkocr_aggregator.writes import batch_writer

log = structlog.get_logger(__name__)


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_AGGREGATOR_", extra="ignore")

    max_in_flight: int = Field(default=500, gt=0)
    # Pages of one job queued for OCR at once, and documents of one job at ingest at once:
    # what a small job submitted behind a big one waits for.
    page_window: int = Field(default=200, gt=0)
    document_window: int = Field(default=4, gt=0)
    # A job whose pages are read in milliseconds sends them several to a message, about this
    # much reading in each, at most `page_batch_pages` (batches.py); slow pages go one a message.
    page_batch_seconds: float = Field(default=0.2, ge=0)
    page_batch_pages: int = Field(default=32, gt=0)
    # Most pages one job may have: a document that would take it over fails with the cause
    # (the pages of one document have their own limit, BULKOCR_INGEST_MAX_PAGES).
    max_job_pages: int = Field(default=100_000, gt=0)
    # Progress is written at most this often per job.
    flush_interval_s: float = Field(default=0.25, gt=0)
    # Running jobs' tallies are compared with a recount this often (a check; drift is logged).
    check_interval_s: float = Field(default=300.0, gt=0)
    # A finished job's state leaves memory after this long without news.
    evict_after_s: float = Field(default=300.0, gt=0)
    sweep_interval_s: float = Field(default=10.0, gt=0)
    # A job with no new page outcome for this long is swept once the page queue is empty...
    sweep_idle_s: float = Field(default=120.0, gt=0)
    # ...or after this long whatever the queue holds.
    sweep_max_idle_s: float = Field(default=1800.0, gt=0)
    retention_s: float = Field(default=24 * 3600.0, gt=0, description="finished jobs are kept this long")
    retention_interval_s: float = Field(default=3600.0, gt=0)


async def handle_submitted(submitted: JobSubmitted, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.submitted(submitted)


async def handle_planned(planned: DocumentPlanned, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.planned(planned)


async def handle_pages_ready(ready: PagesReady, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.pages_ready(ready.tasks, ready.job_id)


async def handle_done(done: PagesDone, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.outcomes(done.job_id, done.pages)


async def handle_failed(failed: PageFailed, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.outcome(failed)


async def handle_retrying(retrying: PageRetrying, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.retrying(retrying)


async def handle_heartbeat(
    beat: NodeHeartbeat, delivery: Delivery, *, store: AggregatorJobStore, jobs: Coordinator
) -> None:
    jobs.heartbeat(beat.node_id, beat.at)
    await store.record_heartbeat(beat)


async def handle_cancel(cancel: JobCancel, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.cancel(cancel.job_id)


async def handle_retry(retry: JobRetry, delivery: Delivery, *, jobs: Coordinator) -> None:
    await jobs.replay_failed(retry.job_id)


async def run(settings: AggregatorSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    async with (
        connect_mongo(mongo) as db,
        NsqPublisher(nsq) as publisher,
        aiohttp.ClientSession() as session,
        batch_writer(db) as writer,
    ):
        store = AggregatorJobStore(db)
        await store.ensure_indexes()
        letters = DeadLetterStore(db)
        await letters.ensure_indexes()
        windows = Windows(
            pages=settings.page_window,
            documents=settings.document_window,
            max_job_pages=settings.max_job_pages,
            batch_seconds=settings.page_batch_seconds,
            batch_pages=settings.page_batch_pages,
        )
        jobs = Coordinator(store, writer, publisher, windows, evict_after_s=settings.evict_after_s)
        metrics.observe(jobs)
        sweeper = Sweeper(store, jobs, session, nsq, settings.sweep_idle_s, settings.sweep_max_idle_s)
        retention = Retention(store, make_blob_store(blob, db), settings.retention_s, letters)
        handlers: list[tuple[Topic[Any], Handler[Any]]] = [
            (JOB_SUBMITTED, functools.partial(handle_submitted, jobs=jobs)),
            (DOCUMENT_PLANNED, functools.partial(handle_planned, jobs=jobs)),
            (PAGES_READY, functools.partial(handle_pages_ready, jobs=jobs)),
            (PAGES_DONE, functools.partial(handle_done, jobs=jobs)),
            (PAGE_FAILED, functools.partial(handle_failed, jobs=jobs)),
            (PAGE_RETRYING, functools.partial(handle_retrying, jobs=jobs)),
            (NODE_HEARTBEAT, functools.partial(handle_heartbeat, store=store, jobs=jobs)),
            (JOB_CANCEL, functools.partial(handle_cancel, jobs=jobs)),
            (JOB_RETRY, functools.partial(handle_retry, jobs=jobs)),
        ]
        await serve(
            nsq=nsq,
            publisher=publisher,
            subscriptions=[
                *(
                    Subscription(topic, AGGREGATOR_CHANNEL, handler, max_in_flight=settings.max_in_flight)
                    for topic, handler in handlers
                ),
                *keeper_subscriptions(letters, nsq.dead_letter_suffix),
            ],
            background=[jobs.dispatch_forever()],
            periodic=[
                Every(settings.flush_interval_s, jobs.flush, "flush"),
                Every(settings.check_interval_s, jobs.check_all, "check"),
                Every(settings.sweep_interval_s, sweeper.sweep, "sweep"),
                Every(settings.retention_interval_s, retention.remove_expired, "retention"),
            ],
            drained=jobs.flush,  # store the progress the drained consumers moved
        )


def main() -> None:
    run_service(
        "aggregator", lambda: run(load(AggregatorSettings), load(NsqSettings), load(MongoSettings), load(BlobSettings))
    )
