"""Output builder: when a job completes, render its heavy formats (the searchable PDF) in the
background and cache them in the blob store, so downloads and the Archipelago push are instant.

A failed build is retried through NSQ with backoff; after the last attempt each unbuilt
output is recorded as failed with its cause (the gateway can still render it on request).
"""

from __future__ import annotations

import functools

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import JOB_COMPLETED, OUTPUTS_CHANNEL, JobCompleted, JobEvent
from bulkocr.job_events import tell_listeners
from bulkocr.mongo import JobStore, OutputStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher
from bulkocr.results import DocumentOutputs, cache_key, cached_formats
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings

log = structlog.get_logger(__name__)

BUILDABLE_DOCUMENTS = ("completed", "partial")


class OutputSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_OUTPUTS_", extra="ignore")

    max_in_flight: int = Field(default=1, gt=0)


async def heavy_outputs(store: JobStore, job_id: str) -> list[tuple[str, str]]:
    """(doc_id, format) pairs the job asked for that are worth building ahead."""
    job = await store.get_job(job_id)
    if job is None:
        return []
    formats = cached_formats(job)
    documents = [d["doc_id"] for d in await store.get_documents(job_id) if d.get("status") in BUILDABLE_DOCUMENTS]
    return [(doc_id, fmt) for doc_id in documents for fmt in formats]


async def handle_completed(
    completed: JobCompleted,
    delivery: Delivery,
    *,
    store: JobStore,
    outputs: OutputStore,
    builder: DocumentOutputs,
    publisher: NsqPublisher | None = None,
) -> None:
    wanted = await heavy_outputs(store, completed.job_id)
    for doc_id, fmt in wanted:
        if await builder.blobs.exists(cache_key(completed.job_id, doc_id, fmt)):
            continue  # built before this redelivery
        with structlog.contextvars.bound_contextvars(doc_id=doc_id, format=fmt):
            size = await builder.build(completed.job_id, doc_id, fmt)
            await outputs.record(completed.job_id, doc_id, fmt, status="ready", size=size)
            log.info("output_built", bytes=size)
    if wanted:
        ready = JobEvent(kind="outputs", data={"formats": sorted({fmt for _, fmt in wanted}), "documents": len(wanted)})
        await tell_listeners(publisher, completed.job_id, ready)


async def give_up(completed: JobCompleted, cause: str, attempts: int, *, store: JobStore, outputs: OutputStore) -> None:
    for doc_id, fmt in await heavy_outputs(store, completed.job_id):
        if await outputs.status(completed.job_id, doc_id, fmt) != "ready":
            await outputs.record(completed.job_id, doc_id, fmt, status="failed", error=cause)


async def run(settings: OutputSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
        store, outputs = JobStore(db), OutputStore(db)
        builder = DocumentOutputs(store, make_blob_store(blob, db))
        completions = Subscription(
            JOB_COMPLETED,
            OUTPUTS_CHANNEL,
            functools.partial(handle_completed, store=store, outputs=outputs, builder=builder, publisher=publisher),
            max_in_flight=settings.max_in_flight,
            on_give_up=functools.partial(give_up, store=store, outputs=outputs),
        )
        await serve(nsq=nsq, publisher=publisher, subscriptions=[completions])


def main() -> None:
    run_service("outputs", run, OutputSettings, NsqSettings, MongoSettings, BlobSettings)
