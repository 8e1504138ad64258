"""The aggregator's heart: each running job's state in memory, fed by events at a constant
cost each, written back coalesced, and its work handed out a window at a time (in batches
when its pages are quick, `batches.py`).

- An outcome is stored (with the others of its report, and batched with others that arrive
  together), then counted: a repeated outcome is recognised in memory and costs no write.
- Progress goes to the job's record at most every `flush_interval_s`, with the documents
  being read; a document's plan and its final state are inserted as records of their own
  (never updated: FerretDB answers an update by reading its whole collection); a finished
  job is announced (`job.completed`) once, after its progress is stored. Each flush also
  tells the job's listeners what changed (`events.py`).
- A job it takes over (after a restart) is seeded once from its stored documents, outcomes
  and page manifest; the slow check recounts the same way and logs any drift.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pymongo import InsertOne, UpdateOne

from bulkocr.contracts import (
    DOCUMENT,
    JOB_COMPLETED,
    PAGE_BATCH,
    DocumentPlanned,
    DocumentTask,
    JobCompleted,
    JobOptions,
    JobSubmitted,
    PageDone,
    PageFailed,
    PageRetrying,
    PageTask,
    document_id,
    utcnow,
)
from bulkocr.errors import PublishError
from bulkocr.mongo import AggregatorJobStore, DocumentRecord, attempt_fields, page_key, task_from_manifest, unplanned
from bulkocr.nsq import NsqPublisher
from bulkocr.wire import read_stored
from bulkocr_aggregator.document_state import DocumentState, PageOutcome
from bulkocr_aggregator.events import EventFeed
from bulkocr_aggregator.recount import recount
from bulkocr_aggregator.state import JobState, Windows
from bulkocr_aggregator.writes import BatchWriter, FirstOutcomes, document_writes

log = structlog.get_logger(__name__)

TALLIED = "tallied"
"""Set on a job's record before the aggregator first writes an outcome or plan of it: a job
without it has nothing stored to seed from."""


@dataclass
class Coordinator:
    store: AggregatorJobStore
    writer: BatchWriter
    publisher: NsqPublisher
    windows: Windows = field(default_factory=Windows)
    evict_after_s: float = 300.0
    jobs: dict[str, JobState] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    _loading: dict[str, asyncio.Task[JobState | None]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.events = EventFeed(self.publisher)
        self.first_outcomes = FirstOutcomes(self.writer)

    # --- taking a job on ----------------------------------------------------------------

    async def job(self, job_id: str) -> JobState | None:
        """The job's state, loaded once however many messages ask at the same time; None
        if the job does not exist (removed by retention, or never created)."""
        state = self.jobs.get(job_id)
        if state is not None:
            return state
        loading = self._loading.get(job_id)
        if loading is None:
            loading = asyncio.create_task(self._load(job_id))
            self._loading[job_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(job_id, None))
        return await asyncio.shield(loading)

    async def _load(self, job_id: str) -> JobState | None:
        job = await self.store.get_job(job_id)
        if job is None:
            return None
        state = JobState(
            job_id,
            page_window=self.windows.pages,
            document_window=self.windows.documents,
            max_pages=self.windows.max_job_pages,
            batching=self.windows.sizer(read_stored(JobOptions, job["options"]).engine),
        )
        state.cancelled = job["status"] == "cancelled"
        state.started_at = job.get("started_at")
        state.finished_at = job.get("finished_at")
        state.completed_event_sent = bool(job.get("completed_event_sent"))
        state.last_activity_at = job.get("last_activity_at") or job["created_at"]
        state.round = int(job.get("replays") or 0)
        if job.get(TALLIED):
            await self._seed(state)
            log.info("job_taken_over", job_id=job_id, pages_done=state.pages_done, pages_failed=state.pages_failed)
        else:
            await self.store.set_job_fields(job_id, {TALLIED: True})
            for index in range(1, int(job.get("documents_total") or 0) + 1):
                state.add_document(document_id(index))
        self.jobs[job_id] = state
        return state

    async def _seed(self, state: JobState) -> None:
        """Tallies and unfinished work from what is stored: one scan of each collection."""
        state.taken_over_at = utcnow()
        documents = await self.store.get_documents(state.job_id)
        for document in documents:
            planned = document.get("pages") is not None or bool(document.get("error"))
            seeded = DocumentState(
                pages=document.get("pages"),
                error=document.get("error"),
                members=tuple(document.get("members") or ()),
                duplicate_of=document.get("duplicate_of") if planned else None,
            )
            seeded.plan_stored = seeded.planned
            if document.get("status") not in (None, "queued", "processing"):
                seeded.final_round = state.round
            state.add_document(document["doc_id"], seeded)
        recount(state, await self.store.page_outcomes(state.job_id))
        state.dirty_documents.update(state.documents)
        await self._queue_unfinished(state, documents)

    async def _queue_unfinished(self, state: JobState, documents: list[DocumentRecord] | None = None) -> None:
        """Queue again what has no outcome: documents never planned, pages never read."""
        if documents is None:
            documents = await self.store.get_documents(state.job_id)
        state.queue_documents((d["doc_id"] for d in documents if unplanned(d)), again=True)
        tasks = [task_from_manifest(entry) for entry in await self.store.page_tasks_of(state.job_id)]
        state.queue_pages(sorted(tasks, key=lambda task: (task.doc_id, task.page)))
        self._wake.set()

    # --- events ---------------------------------------------------------------------------

    async def submitted(self, submitted: JobSubmitted) -> None:
        state = await self.job(submitted.job_id)
        if state is None:
            return
        state.queue_documents(document_id(index) for index in range(1, submitted.documents_total + 1))
        self._wake.set()

    async def planned(self, planned: DocumentPlanned) -> None:
        """Count a document's plan; its record is written with the next flush (should this
        process die first, the document is handed to ingest again, which repeats the plan)."""
        state = await self.job(planned.job_id)
        if state is None:
            log.info("plan_dropped", reason="no such job")
            return
        state.plan(
            planned.doc_id,
            pages=planned.pages,
            error=planned.error,
            members={member.doc_id: member.filename for member in planned.members},
            duplicate_of=planned.duplicate_of,
            filename=planned.filename,
        )
        self._active(state)

    async def pages_ready(self, tasks: Iterable[PageTask], job_id: str) -> None:
        state = await self.job(job_id)
        if state is None or state.cancelled:
            return
        state.queue_pages(tasks)
        self._wake.set()

    async def outcome(self, report: PageDone | PageFailed) -> None:
        await self.outcomes(report.job_id, [report])

    async def outcomes(self, job_id: str, reports: Sequence[PageDone | PageFailed]) -> None:
        """Store the first outcome of each of these pages of a job, together, and count them;
        repeats change nothing."""
        state = await self.job(job_id)
        if state is None:
            log.info("outcome_dropped", reason="no such job")
            return
        stored = await self.first_outcomes.store(r for r in reports if not state.known(r.doc_id, r.page))
        for report in stored:
            error = report.error if isinstance(report, PageFailed) else None
            state.record(report.doc_id, report.page, PageOutcome.of(report), error=error)
            if error is not None:
                log.info("page_failed", doc_id=report.doc_id, page=report.page, error=error)
            self.events.page(report)
        if not stored:
            return
        self._active(state)
        if state.finished and state.finished_at is None:
            await self.flush_job(state)  # its last page is in: finished now, not at the next flush

    async def retrying(self, retrying: PageRetrying) -> None:
        """Keep a failed attempt of a page (its outcome is still to come), for the status."""
        state = await self.job(retrying.job_id)
        if state is None or state.known(retrying.doc_id, retrying.page):
            return
        key = page_key(retrying.job_id, retrying.doc_id, retrying.page)
        attempt = {"_id": f"{key}#{retrying.attempts}", **attempt_fields(retrying, "retrying")}
        await self.writer.write(("page_attempts", InsertOne(attempt)))

    def heartbeat(self, node_id: str, at: datetime) -> None:
        self.last_seen[node_id] = at

    def _active(self, state: JobState) -> None:
        state.last_activity_at = utcnow()
        state.dirty = True
        self._wake.set()

    # --- job control ------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> None:
        """Mark a job cancelled: nothing more of it is handed out, and workers drop its pages unread."""
        state = await self.job(job_id)
        if state is None or state.finished:
            return
        state.cancel()
        await self.flush_job(state)
        log.info("job_cancelled", job_id=job_id)

    async def replay_failed(self, job_id: str) -> int:
        """Forget the failures of pages that reached OCR and read them again."""
        state = await self.job(job_id)
        if state is None or state.cancelled:
            return 0
        keys = await self.store.reopen_failed_pages(job_id)
        if not keys:
            return 0
        tasks = [task_from_manifest(entry) for entry in await self.store.page_tasks_for(keys)]
        state.round += 1  # the documents reopened get a final record of this round
        for task in tasks:
            state.forget(task.doc_id, task.page)
        state.finished_at = None
        state.completed_event_sent = False
        state.queue_pages(tasks)
        self._active(state)
        await self.flush_job(state)
        log.info("job_replayed", job_id=job_id, pages=len(tasks))
        return len(tasks)

    async def redispatch(self, job_id: str) -> None:
        """Hand out a quiet job's unfinished work again (what was out may be lost with nsqd)."""
        state = await self.job(job_id)
        if state is None or state.finished:
            return
        state.restart_dispatch()
        await self._queue_unfinished(state)
        state.last_activity_at = utcnow()
        state.dirty = True

    # --- handing out work ---------------------------------------------------------------------

    async def dispatch_forever(self) -> None:
        """Publish what each job's window has room for, whenever something moved."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch()
            except PublishError as error:
                log.warning("dispatch_failed", error=str(error))
                await asyncio.sleep(1.0)
                self._wake.set()

    async def dispatch(self) -> None:
        for state in list(self.jobs.values()):
            documents = state.next_documents()
            try:
                if documents:
                    tasks = [
                        DocumentTask(job_id=state.job_id, doc_id=doc_id, again=doc_id in state.documents_again)
                        for doc_id in documents
                    ]
                    await self.publisher.publish_many(DOCUMENT, tasks)
            except PublishError:
                state.not_sent(doc_ids=documents)
                raise
            pages = state.next_pages()
            try:
                if pages:
                    await self.publisher.publish_many(PAGE_BATCH, state.batching.batches(state.job_id, pages))
            except PublishError:
                state.not_sent(tasks=pages)
                raise

    # --- writing progress -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Write the progress of every job that moved; announce the ones that finished."""
        now = utcnow()
        for state in list(self.jobs.values()):
            if state.dirty or state.dirty_documents:
                await self.flush_job(state)
            elif (
                state.finished
                and state.completed_event_sent
                and _older(state.last_activity_at, now, self.evict_after_s)
            ):
                del self.jobs[state.job_id]
                self.events.forget(state.job_id)

    async def flush_job(self, state: JobState) -> None:
        async with state.flushing:  # one at a time: a job is announced finished once
            await self._flush_job(state)

    async def _flush_job(self, state: JobState) -> None:
        now = utcnow()
        dirty_documents, state.dirty_documents = state.dirty_documents, set()
        state.dirty = False
        fields = state.progress_fields(self.last_seen)
        if state.status != "queued" and state.started_at is None:
            state.started_at = now
        if state.finished and state.finished_at is None:
            state.finished_at = now
        fields.update(
            started_at=state.started_at,
            finished_at=state.finished_at,
            last_activity_at=state.last_activity_at,
            completed_event_sent=state.completed_event_sent,
            updated_at=now,
        )
        # Document records first: the job is never announced finished before its documents.
        # What is written is what the state was now: outcomes arriving during the write are
        # the next flush's (marking them stored after the await would lose their records).
        written_finished, written_round = state.finished, state.round
        writes, written = document_writes(state, dirty_documents)
        writes.append(("jobs", UpdateOne({"_id": state.job_id}, {"$set": fields})))
        try:
            await self.writer.write(*writes)
        except BaseException:
            state.dirty = True
            state.dirty_documents |= dirty_documents
            raise
        for doc_id, record in written:
            document = state.documents[doc_id]
            if record == "document":
                document.stored = True
            elif record == "plan":
                document.plan_stored = True
            else:
                document.final_round = written_round
        if written_finished and not state.completed_event_sent:
            await self.publisher.publish(JOB_COMPLETED, JobCompleted(job_id=state.job_id, status=state.status))
            state.completed_event_sent = True
            await self.store.set_job_fields(state.job_id, {"completed_event_sent": True})
            log.info("job_finished", job_id=state.job_id, status=state.status, done=state.pages_done)
        await self.events.publish(state, fields, [doc_id for doc_id, record in written if record == "final"])

    # --- the slow check -------------------------------------------------------------------------

    async def check(self, job_id: str) -> int:
        """Recount a job's outcomes from the database and compare: drift is logged, and
        outcomes stored but not counted are counted. Returns how many differed."""
        state = await self.job(job_id)
        if state is None:
            return 0
        state.applied_since_check = set()
        found = recount(state, await self.store.page_outcomes(job_id))
        if found.late:
            log.info("late_outcomes_counted", job_id=job_id, pages=len(found.late), sample=found.late[:5])
        if drift := found.uncounted + found.unstored:
            uncounted, unstored = len(found.uncounted), len(found.unstored)
            log.warning("tally_drift", job_id=job_id, uncounted=uncounted, unstored=unstored, sample=drift[:5])
        return found.differed

    async def check_all(self) -> None:
        for job_id, state in list(self.jobs.items()):
            if not state.finished:
                await self.check(job_id)

    def in_memory(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)


def _older(moment: datetime | None, now: datetime, seconds: float) -> bool:
    return moment is None or (now - moment).total_seconds() > seconds
