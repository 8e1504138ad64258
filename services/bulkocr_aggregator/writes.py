"""Writes that arrive together reach the database together.

Page outcomes come in bursts (a worker pool finishes many pages a second). Each handler
hands its writes to the `BatchWriter` and waits for them to be stored (so a message is
finished only once its outcome is durable); the writer sends everything that queued up
while the previous round was being written as one `bulk_write` per collection. Under load
a round carries hundreds of writes for the cost of one; alone, a write goes at once.

Inserts are write-once: one that finds its key taken is a repeat and changes nothing
(FerretDB answers an insert in constant time, while any update scans its collection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram
from pymongo import InsertOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from bulkocr.contracts import PageDone, PageFailed
from bulkocr.metrics import SECONDS_BUCKETS
from bulkocr.mongo import (
    DUPLICATE_KEY,
    PLAN_STAGE,
    Database,
    document_key,
    document_progress_record,
    outcome_records,
    page_key,
)
from bulkocr_aggregator.state import JobState

WRITE_SECONDS = Histogram(
    "bulkocr_aggregator_write_seconds",
    "Time one batched round of database writes took (outcomes, progress, plans)",
    buckets=SECONDS_BUCKETS,
)

Write = tuple[str, InsertOne[Any] | UpdateOne | UpdateMany]
"""(collection name, write)."""


class OutcomeNotStored(Exception):
    """Another copy of this outcome was being stored and that failed: try again later."""


@dataclass
class BatchWriter:
    db: Database
    max_batch: int = 2000
    _queue: asyncio.Queue[tuple[list[Write], asyncio.Future[None]]] = field(default_factory=asyncio.Queue)
    rounds: int = 0

    async def write(self, *writes: Write) -> None:
        """Store these updates (in order, with whatever else is waiting); raises what the database raised."""
        if not writes:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((list(writes), done))
        await done

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0][0])
            while size < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                size += len(batch[-1][0])
            await self._write_round(batch)

    async def _write_round(self, batch: list[tuple[list[Write], asyncio.Future[None]]]) -> None:
        by_collection: dict[str, list[InsertOne[Any] | UpdateOne | UpdateMany]] = {}
        for writes, _ in batch:
            for collection, update in writes:
                by_collection.setdefault(collection, []).append(update)
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            for collection, operations in by_collection.items():
                await _bulk_write(self.db, collection, operations)
        except Exception as failure:  # noqa: BLE001  # handed to every waiter, who retries its message
            error = failure
        self.rounds += 1
        WRITE_SECONDS.observe(time.perf_counter() - started)
        for _, done in batch:
            if done.done():
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


async def _bulk_write(db: Database, collection: str, writes: list[InsertOne[Any] | UpdateOne | UpdateMany]) -> None:
    # Unordered: a repeated insert must not stop the others (it is reported, then ignored).
    try:
        await db[collection].bulk_write(writes, ordered=False)
    except BulkWriteError as error:
        if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
            raise


@contextlib.asynccontextmanager
async def batch_writer(db: Database) -> AsyncIterator[BatchWriter]:
    writer = BatchWriter(db)
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def document_writes(state: JobState, doc_ids: Iterable[str]) -> tuple[list[Write], list[tuple[str, str]]]:
    """What these documents need stored, all inserts: the record of a document found in an
    archive, a document's plan once it has one, and its final record once it is finished
    (one per round). What is in between is in the job record (`documents_active`). Returns
    the writes and which records they are (document id, "document" | "plan" | "final")."""
    writes: list[Write] = []
    written: list[tuple[str, str]] = []
    for doc_id in sorted(doc_ids):
        document = state.documents[doc_id]
        if not document.stored:
            record: dict[str, Any] = {"_id": document_key(state.job_id, doc_id), "job_id": state.job_id}
            record |= {"doc_id": doc_id, "blob": None, "filename": document.filename or doc_id}
            writes.append(("documents", InsertOne(record)))
            written.append((doc_id, "document"))
        if document.planned and not document.plan_stored:
            plan = document_progress_record(state.job_id, doc_id, PLAN_STAGE, document.plan_fields())
            writes.append(("document_progress", InsertOne(plan)))
            written.append((doc_id, "plan"))
        if document.finished and document.final_round != state.round:
            final = document_progress_record(state.job_id, doc_id, state.round, document.record_fields())
            writes.append(("document_progress", InsertOne(final)))
            written.append((doc_id, "final"))
    return writes, written


def outcome_writes(report: PageDone | PageFailed) -> list[Write]:
    """A page's first outcome, inserted (a repeat finds its key taken and changes nothing)."""
    return [(collection, InsertOne(record)) for collection, record in outcome_records(report)]


@dataclass
class FirstOutcomes:
    """Stores pages' outcomes so that each page is counted once, even when two copies of its
    outcome arrive while the first is being written (a redelivery racing the original)."""

    writer: BatchWriter
    _writing: dict[str, asyncio.Future[bool]] = field(default_factory=dict)

    async def store(self, reports: Iterable[PageDone | PageFailed]) -> list[PageDone | PageFailed]:
        """Store these outcomes together; returns those this call stored, to be counted (a copy
        of one being stored by another call waits for it, and raises if that failed)."""
        new: dict[str, PageDone | PageFailed] = {}
        elsewhere: dict[str, asyncio.Future[bool]] = {}
        for report in reports:
            key = page_key(report.job_id, report.doc_id, report.page)
            if (pending := self._writing.get(key)) is not None:
                elsewhere[key] = pending
            else:
                new.setdefault(key, report)
        for key, pending in elsewhere.items():
            if not await asyncio.shield(pending):
                raise OutcomeNotStored(f"page {key} could not be stored yet")
        if new:  # last: the caller counts them before anything else can run
            await self._write(new)
        return list(new.values())

    async def _write(self, reports: dict[str, PageDone | PageFailed]) -> None:
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._writing.update(dict.fromkeys(reports, stored))
        try:
            await self.writer.write(*(write for report in reports.values() for write in outcome_writes(report)))
        except BaseException:
            stored.set_result(False)
            raise
        finally:
            for key in reports:
                self._writing.pop(key, None)
        stored.set_result(True)
