"""Aggregator: page outcomes and document plans in, per-job and per-node progress out.

Every write is idempotent (a redelivered result counts once), and progress is recounted
from the stored page outcomes after each write, serialised per job in this process. A
periodic pass recounts every unfinished job, so a crash between a write and its recount
never leaves a job hanging. When a job finishes, `job.completed` is published once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.contracts import (
    DOCUMENT_PLANNED,
    JOB_COMPLETED,
    NODE_HEARTBEAT,
    PAGE_DONE,
    PAGE_FAILED,
    DocumentPlanned,
    JobCompleted,
    JobStatus,
    NodeHeartbeat,
    PageDone,
    PageFailed,
    utcnow,
)
from bulkocr.log import configure_logging
from bulkocr.mongo import JobStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher, consuming
from bulkocr.runtime import shutdown_event
from bulkocr.settings import LogSettings, MongoSettings, NsqSettings, load
from bulkocr_aggregator.progress import FINISHED, document_status, job_status, pages_total

log = structlog.get_logger(__name__)

CHANNEL = "aggregator"


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_AGGREGATOR_", extra="ignore")

    max_in_flight: int = Field(default=20, gt=0)
    recount_interval_s: float = Field(default=10.0, gt=0)


@dataclass
class Progress:
    """Recounts jobs, one at a time per job; a recount already waiting covers later writes."""

    store: JobStore
    publisher: NsqPublisher
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    _waiting: set[str] = field(default_factory=set)

    def lock(self, job_id: str) -> asyncio.Lock:
        """Held for every write to a job's documents: FerretDB applies updates as
        read-modify-write, so two concurrent writes to one document can undo each other."""
        return self._locks[job_id]

    async def refresh(self, job_id: str) -> None:
        if job_id in self._waiting:
            return  # a recount that has not started yet will see this write
        self._waiting.add(job_id)
        async with self._locks[job_id]:
            self._waiting.discard(job_id)
            await self._recount(job_id)

    async def _recount(self, job_id: str) -> None:
        job = await self.store.get_job(job_id)
        if job is None:
            return  # removed by retention, or never created: nothing to count
        documents = await self.store.get_documents(job_id)
        per_document = await self.store.document_counts(job_id)
        statuses = []
        for document in documents:
            counts = per_document.get(document["doc_id"], {"done": 0, "failed": 0})
            doc_status = document_status(document, counts["done"], counts["failed"])
            statuses.append(doc_status)
            update = {"status": doc_status, "pages_done": counts["done"], "pages_failed": counts["failed"]}
            if any(document.get(key) != value for key, value in update.items()):
                await self.store.set_document_fields(job_id, document["doc_id"], update)
        status = job_status(documents, statuses) if job["status"] != "cancelled" else "cancelled"
        await self._save_job(job, status, documents)

    async def _save_job(self, job: Mapping[str, Any], status: JobStatus, documents: list[dict[str, Any]]) -> None:
        job_id = job["_id"]
        counts = await self.store.page_counts(job_id)
        fields: dict[str, Any] = {
            "status": status,
            "pages_total": pages_total(documents),
            "pages_done": counts["done"],
            "pages_failed": counts["failed"],
            "nodes": await self._nodes(job_id),
        }
        if status != "queued" and job.get("started_at") is None:
            fields["started_at"] = utcnow()
        if status in FINISHED and job.get("finished_at") is None:
            fields["finished_at"] = utcnow()
        await self.store.set_job_fields(job_id, fields)
        if status in FINISHED and not job.get("completed_event_sent"):
            await self.publisher.publish(JOB_COMPLETED, JobCompleted(job_id=job_id, status=status))
            await self.store.set_job_fields(job_id, {"completed_event_sent": True})
            log.info("job_finished", job_id=job_id, status=status, **counts)

    async def _nodes(self, job_id: str) -> dict[str, dict[str, Any]]:
        nodes = await self.store.node_counts(job_id)
        seen = {node["_id"]: node.get("last_seen") for node in await self.store.list_nodes()}
        return {node_id: {**values, "last_seen": seen.get(node_id)} for node_id, values in nodes.items()}

    async def recount_unfinished(self) -> None:
        async for job_id in self._unfinished():
            await self.refresh(job_id)

    async def _unfinished(self) -> AsyncIterator[str]:
        query = {"$or": [{"status": {"$nin": list(FINISHED)}}, {"completed_event_sent": False}]}
        async for job in self.store.jobs.find(query, {"_id": 1}):
            yield job["_id"]


async def handle_planned(planned: DocumentPlanned, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    fields: dict[str, Any] = {"pages": planned.pages, "error": planned.error}
    if planned.filename is not None:
        fields["filename"] = planned.filename
    if planned.members:
        fields["members"] = [member.doc_id for member in planned.members]
    async with progress.lock(planned.job_id):
        await store.plan_document(planned.job_id, planned.doc_id, fields)
        for member in planned.members:
            await store.plan_document(planned.job_id, member.doc_id, {}, filename=member.filename)
    await progress.refresh(planned.job_id)


async def handle_done(done: PageDone, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    if await store.record_page_done(done):
        log.info("page_recorded", status="done")
    await progress.refresh(done.job_id)


async def handle_failed(failed: PageFailed, delivery: Delivery, *, store: JobStore, progress: Progress) -> None:
    if await store.record_page_failed(failed):
        log.info("page_recorded", status="failed", error=failed.error)
    await progress.refresh(failed.job_id)


async def handle_heartbeat(beat: NodeHeartbeat, delivery: Delivery, *, store: JobStore) -> None:
    await store.record_heartbeat(beat)


async def recount_periodically(progress: Progress, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await progress.recount_unfinished()
        except Exception as error:  # noqa: BLE001  # the next pass tries again
            log.warning("recount_failed", error=f"{type(error).__name__}: {error}")


async def run(settings: AggregatorSettings, nsq: NsqSettings, mongo: MongoSettings) -> None:
    stop = shutdown_event()
    async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
        store = JobStore(db)
        await store.ensure_indexes()
        progress = Progress(store, publisher)
        options: dict[str, Any] = {"publisher": publisher, "settings": nsq, "max_in_flight": settings.max_in_flight}
        async with contextlib.AsyncExitStack() as stack:
            planned = functools.partial(handle_planned, store=store, progress=progress)
            done = functools.partial(handle_done, store=store, progress=progress)
            failed = functools.partial(handle_failed, store=store, progress=progress)
            beat = functools.partial(handle_heartbeat, store=store)
            await stack.enter_async_context(consuming(DOCUMENT_PLANNED, CHANNEL, planned, **options))
            await stack.enter_async_context(consuming(PAGE_DONE, CHANNEL, done, **options))
            await stack.enter_async_context(consuming(PAGE_FAILED, CHANNEL, failed, **options))
            await stack.enter_async_context(consuming(NODE_HEARTBEAT, CHANNEL, beat, **options))
            recounts = asyncio.create_task(recount_periodically(progress, settings.recount_interval_s))
            log.info("service_started")
            await stop.wait()
            recounts.cancel()


def main() -> None:
    configure_logging(load(LogSettings), service="aggregator")
    asyncio.run(run(load(AggregatorSettings), load(NsqSettings), load(MongoSettings)))
