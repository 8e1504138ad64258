"""`AggregatorJobStore`: what the aggregator writes: job progress, page outcomes, worker
heartbeats, replays of failed pages, and retention (it alone deletes jobs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from bulkocr.contracts import FINISHED_STATUSES, JobStatus, NodeHeartbeat, PageDone, PageFailed, utcnow
from bulkocr.mongo.client import Document, insert_ignoring_duplicates
from bulkocr.mongo.jobs import JobStore
from bulkocr.mongo.models import JobRecord
from bulkocr.mongo.records import outcome_records


class AggregatorJobStore(JobStore):
    """Job progress, page outcomes, nodes and retention."""

    async def set_job_fields(self, job_id: str, fields: Mapping[str, Any]) -> None:
        await self.jobs.update_one({"_id": job_id}, {"$set": {**fields, "updated_at": utcnow()}})

    async def page_tasks_of(self, job_id: str) -> list[Document]:
        """Every page task of a job (one scan: for taking a job over, never per page)."""
        return [task async for task in self.page_tasks.find({"job_id": job_id})]

    async def page_outcomes(self, job_id: str) -> list[Document]:
        """Every page record of a job, without results (one scan: for taking a job over and
        for the slow check, never per page)."""
        projection = {"doc_id": 1, "page": 1, "status": 1, "node_id": 1, "busy_s": 1, "error": 1, "finished_at": 1}
        return [page async for page in self.pages.find({"job_id": job_id}, projection)]

    async def record_heartbeat(self, beat: NodeHeartbeat) -> None:
        worker = {
            "in_flight": beat.in_flight,
            "pages_done": beat.pages_done,
            "pages_failed": beat.pages_failed,
            "engine": beat.engine,
            "last_seen": beat.at,
        }
        await self.nodes.update_one(
            {"_id": beat.node_id},
            {"$set": {f"workers.{beat.worker_id}": worker, "last_seen": beat.at, "engine": beat.engine}},
            upsert=True,
        )

    async def record_outcome(self, report: PageDone | PageFailed) -> bool:
        """Store a page's outcome unless it already has one (the first one stays). True if new.

        The aggregator writes the same records in batches; this is the one-page form."""
        new = False
        for collection, record in outcome_records(report):
            new = await insert_ignoring_duplicates(self.db[collection], [record]) > 0
        return new

    async def reopen_failed_pages(self, job_id: str) -> list[str]:
        """Forget the failures of a job's pages that have a task to replay; return their keys."""
        failed = [page["_id"] async for page in self.pages.find({"job_id": job_id, "status": "failed"}, {"_id": 1})]
        replayable = [task["_id"] for task in await self.page_tasks_for(failed)]
        if replayable:
            await self.pages.delete_many({"_id": {"$in": replayable}, "status": "failed"})
        return replayable

    async def delete_job(self, job_id: str) -> dict[str, int]:
        """Remove a job's records from every collection (its uploads' bytes no longer count
        against its owner's quota); return how many of each."""
        removed: dict[str, int] = {}
        by_field = (
            "pages",
            "page_results",
            "page_attempts",
            "page_tasks",
            "documents",
            "document_progress",
            "ingested",
            "outputs",
            "idempotency_keys",
            "archipelago_objects",
            "webhook_deliveries",
        )
        for name in by_field:
            removed[name] = (await self.db[name].delete_many({"job_id": job_id})).deleted_count
        for name in ("archipelago_requests", "archipelago", "upload_bytes"):
            removed[name] = (await self.db[name].delete_many({"_id": job_id})).deleted_count
        removed["jobs"] = (await self.jobs.delete_one({"_id": job_id})).deleted_count
        return removed

    async def finished_jobs_before(self, cutoff: datetime, statuses: tuple[JobStatus, ...]) -> list[str]:
        cursor = self.jobs.find({"status": {"$in": list(statuses)}, "finished_at": {"$lt": cutoff}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def unfinished_jobs(self) -> AsyncIterator[JobRecord]:
        """Jobs not finished (or not yet announced as finished): only their status, creation
        and last activity are read."""
        query = {"$or": [{"status": {"$nin": list(FINISHED_STATUSES)}}, {"completed_event_sent": False}]}
        async for job in self.jobs.find(query, {"created_at": 1, "last_activity_at": 1, "status": 1}):
            yield job
