"""Nothing hangs and nothing is kept forever.

The sweeper hands out again the unfinished work of a job that has gone quiet: documents
never planned and pages without an outcome (lost with nsqd, or whose result was lost). It
waits until the job has been idle for a while and the page queue is empty (so a backlog is
not duplicated), or for a hard deadline. Retention removes finished jobs older than the
retention, with their blobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import structlog

from bulkocr.blobs import BlobStore
from bulkocr.contracts import FINISHED_STATUSES, OCR_CHANNEL, PAGE_BATCH, utcnow
from bulkocr.mongo import AggregatorJobStore, DeadLetterStore, JobRecord
from bulkocr.nsq import backlog
from bulkocr.settings import NsqSettings
from bulkocr_aggregator.coordinator import Coordinator

log = structlog.get_logger(__name__)


@dataclass
class Sweeper:
    store: AggregatorJobStore
    jobs: Coordinator
    session: aiohttp.ClientSession
    nsq: NsqSettings
    idle_s: float
    max_idle_s: float

    async def sweep(self) -> None:
        queue_empty: bool | None = None
        async for job in self.store.unfinished_jobs():
            if not self._idle(job, self.idle_s):
                continue
            if queue_empty is None:
                queue_empty = await backlog(self.session, self.nsq, PAGE_BATCH.name, OCR_CHANNEL) == 0
            if queue_empty or self._idle(job, self.max_idle_s):
                await self.jobs.redispatch(job["_id"])
                log.warning("job_swept", job_id=job["_id"])

    def _idle(self, job: JobRecord, seconds: float) -> bool:
        state = self.jobs.in_memory(job["_id"])
        last = state.last_activity_at if state is not None else None
        last = last or job.get("last_activity_at") or job["created_at"]
        return bool(utcnow() - last > timedelta(seconds=seconds))


@dataclass
class Retention:
    store: AggregatorJobStore
    blobs: BlobStore
    keep_s: float
    dead_letters: DeadLetterStore | None = None

    async def remove_expired(self, now: datetime | None = None) -> list[str]:
        """Remove finished jobs that finished before the retention: records and blobs. Never a running job."""
        cutoff = (now or utcnow()) - timedelta(seconds=self.keep_s)
        removed = []
        for job_id in await self.store.finished_jobs_before(cutoff, FINISHED_STATUSES):
            blobs = await self.blobs.delete_prefix(f"jobs/{job_id}/")
            records = await self.store.delete_job(job_id)
            log.info("job_removed", job_id=job_id, blobs=blobs, **records)
            removed.append(job_id)
        if self.dead_letters is not None and (letters := await self.dead_letters.remove_before(cutoff)):
            log.info("dead_letters_removed", letters=letters)
        return removed
