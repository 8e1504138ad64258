"""Job bookkeeping: recount progress from stored outcomes, finish, cancel and replay jobs.

All writes to one job's documents go through `Progress.lock(job_id)`: FerretDB applies an
update as read-modify-write, so two concurrent writes to one document can undo each other.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from bulkocr.contracts import JOB_COMPLETED, PAGE, JobCompleted, JobStatus, PageTask, utcnow
from bulkocr.mongo import JobStore
from bulkocr.nsq import NsqPublisher
from bulkocr_aggregator.progress import FINISHED, document_status, job_status, pages_total

log = structlog.get_logger(__name__)


@dataclass
class Progress:
    """Recounts jobs, one at a time per job; a recount already waiting covers later writes."""

    store: JobStore
    publisher: NsqPublisher
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    _waiting: set[str] = field(default_factory=set)

    def lock(self, job_id: str) -> asyncio.Lock:
        return self._locks[job_id]

    async def refresh(self, job_id: str) -> None:
        if job_id in self._waiting:
            return  # a recount that has not started yet will see this write
        self._waiting.add(job_id)
        async with self.lock(job_id):
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
            update = {
                "status": doc_status,
                "pages_done": counts["done"],
                "pages_failed": counts["failed"],
                "pages_error": await self._pages_error(job_id, document["doc_id"], counts["failed"]),
            }
            if any(document.get(key) != value for key, value in update.items()):
                await self.store.set_document_fields(job_id, document["doc_id"], update)
        status = job_status(documents, statuses) if job["status"] != "cancelled" else "cancelled"
        await self._save_job(job, status, documents)

    async def _pages_error(self, job_id: str, doc_id: str, failed: int) -> str | None:
        """A document's summary of its failed pages: how many, and the first one's cause."""
        if not failed:
            return None
        first = await self.store.pages.find_one({"job_id": job_id, "doc_id": doc_id, "status": "failed"})
        cause = f"page {first['page']}: {first.get('error')}" if first else "see its pages"
        return f"{failed} page{'s' if failed > 1 else ''} failed; {cause}"

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
        if (fields["pages_total"], counts["done"], counts["failed"]) != (
            job.get("pages_total"),
            job.get("pages_done"),
            job.get("pages_failed"),
        ):
            fields["last_activity_at"] = utcnow()
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

    async def cancel(self, job_id: str) -> None:
        """Mark a job cancelled (workers then drop its pages unread) and announce it once."""
        async with self.lock(job_id):
            job = await self.store.get_job(job_id)
            if job is None or job["status"] in FINISHED:
                return
            await self.store.set_job_fields(job_id, {"status": "cancelled", "finished_at": utcnow()})
            await self._recount(job_id)
        log.info("job_cancelled", job_id=job_id)

    async def replay_failed(self, job_id: str) -> int:
        """Forget the failures of pages that reached OCR and publish their tasks again."""
        async with self.lock(job_id):
            job = await self.store.get_job(job_id)
            if job is None or job["status"] == "cancelled":
                return 0
            keys = await self.store.reopen_failed_pages(job_id)
            if not keys:
                return 0
            tasks = [task_from_manifest(entry) for entry in await self.store.page_tasks_for(keys)]
            reset = {"completed_event_sent": False, "finished_at": None, "last_activity_at": utcnow()}
            await self.store.set_job_fields(job_id, reset)
            await self.publisher.publish_many(PAGE, tasks)
            await self._recount(job_id)
        log.info("job_replayed", job_id=job_id, pages=len(tasks))
        return len(tasks)

    async def recount_unfinished(self) -> None:
        async for job_id in self.unfinished():
            await self.refresh(job_id)

    async def unfinished(self) -> AsyncIterator[str]:
        query = {"$or": [{"status": {"$nin": list(FINISHED)}}, {"completed_event_sent": False}]}
        async for job in self.store.jobs.find(query, {"_id": 1}):
            yield job["_id"]


def task_from_manifest(entry: Mapping[str, Any]) -> PageTask:
    """The page task a manifest entry recorded (without the store's own fields)."""
    return PageTask.model_validate({key: value for key, value in entry.items() if key in PageTask.model_fields})
