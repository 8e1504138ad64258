"""Nothing hangs and nothing is kept forever.

The sweeper publishes again the work of a job that has gone quiet: page tasks with no
outcome (lost with nsqd, or whose result was lost) from the page manifest, and the
submission itself for documents never planned. It waits until the job has been idle for a
while and the page queue is empty (so a long backlog is not duplicated), or for a hard
deadline. Retention removes finished jobs older than the retention, with their blobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from bulkocr.blobs import BlobStore
from bulkocr.contracts import JOB_SUBMITTED, PAGE, utcnow
from bulkocr.mongo import JobStore
from bulkocr.nsq import NsqPublisher, backlog
from bulkocr.settings import NsqSettings
from bulkocr_aggregator.jobs import Progress, task_from_manifest
from bulkocr_aggregator.progress import FINISHED

log = structlog.get_logger(__name__)

OCR_CHANNEL = "ocr"


@dataclass
class Sweeper:
    store: JobStore
    publisher: NsqPublisher
    progress: Progress
    session: aiohttp.ClientSession
    nsq: NsqSettings
    idle_s: float
    max_idle_s: float

    async def sweep(self) -> None:
        queue_empty: bool | None = None
        async for job_id in self.progress.unfinished():
            job = await self.store.get_job(job_id)
            if job is None or job["status"] in FINISHED or not self._idle(job, self.idle_s):
                continue
            if queue_empty is None:
                queue_empty = await backlog(self.session, self.nsq, PAGE.name, OCR_CHANNEL) == 0
            if queue_empty or self._idle(job, self.max_idle_s):
                await self.sweep_job(job)

    def _idle(self, job: dict[str, Any], seconds: float) -> bool:
        last = job.get("last_activity_at") or job["created_at"]
        return bool(utcnow() - last > timedelta(seconds=seconds))

    async def sweep_job(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]
        async with self.progress.lock(job_id):
            tasks = [task_from_manifest(entry) for entry in await self.store.page_tasks_without_outcome(job_id)]
            unplanned = [d for d in await self.store.get_documents(job_id) if _unplanned(d)]
            await self.store.set_job_fields(job_id, {"last_activity_at": utcnow()})
        if tasks:
            await self.publisher.publish_many(PAGE, tasks)
        if unplanned:
            submission = await self.store.resubmission(job, only={d["doc_id"] for d in unplanned})
            await self.publisher.publish(JOB_SUBMITTED, submission)
        if tasks or unplanned:
            log.warning("job_swept", job_id=job_id, pages=len(tasks), documents=len(unplanned))


def _unplanned(document: dict[str, Any]) -> bool:
    """Uploaded but never announced by ingest (archive members are announced with their archive)."""
    return document.get("blob") is not None and document.get("pages") is None and not document.get("error")


@dataclass
class Retention:
    store: JobStore
    blobs: BlobStore
    keep_s: float

    async def remove_expired(self, now: datetime | None = None) -> list[str]:
        """Remove finished jobs that finished before the retention: records and blobs. Never a running job."""
        cutoff = (now or utcnow()) - timedelta(seconds=self.keep_s)
        removed = []
        for job_id in await self.store.finished_jobs_before(cutoff, FINISHED):
            blobs = await self.blobs.delete_prefix(f"jobs/{job_id}/")
            records = await self.store.delete_job(job_id)
            log.info("job_removed", job_id=job_id, blobs=blobs, **records)
            removed.append(job_id)
        return removed
