"""One job's progress and dispatch, kept in the aggregator's memory.

Every event (a document's plan, a page's outcome) moves the tallies by a constant amount of
work, whatever the size of the job: nothing here counts over the job's pages. The aggregator
is the only writer of progress, so its tallies are the truth; they are seeded from the
database once when it takes a job over, and checked against a recount on a slow timer.

The job's work is also handed out from here, a window at a time: at most `document_window`
of its documents at ingest and `page_window` of its pages queued for OCR, topped up as
plans and outcomes come back. A small job submitted behind a big one therefore waits for
one window of the big job's pages, not for all of them.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bulkocr.contracts import JobStatus, PageTask
from bulkocr_aggregator.batches import BatchSizer
from bulkocr_aggregator.document_state import (
    DOCUMENT_STATUSES,
    DocumentState,
    NodeTally,
    PageOutcome,
    job_status,
    page_id,
)


@dataclass
class Windows:
    """How much of one job goes out at once (pages to OCR, documents to ingest), and the most
    pages one job may have in all."""

    pages: int = 200
    documents: int = 4
    max_job_pages: int = 100_000
    # Quick pages go several to a message, about this much reading each, at most this many.
    batch_seconds: float = 0.2
    batch_pages: int = 32
    engine_pace: dict[str, float] = field(default_factory=dict)
    """Seconds a page of each engine took lately, across jobs (batches.py)."""

    def sizer(self, engine: str) -> BatchSizer:
        return BatchSizer(
            seconds=self.batch_seconds, most=self.batch_pages, engine=engine, engine_pace=self.engine_pace
        )


@dataclass
class JobState:
    """Tallies and dispatch queues of one job. Methods are synchronous: between two awaits
    of the aggregator, one event is applied whole."""

    job_id: str
    page_window: int
    document_window: int
    max_pages: int = 100_000
    documents: dict[str, DocumentState] = field(default_factory=dict)
    outcomes: dict[str, PageOutcome] = field(default_factory=dict)
    nodes: dict[str, NodeTally] = field(default_factory=dict)
    status_counts: Counter[str] = field(default_factory=Counter)
    failed_documents: set[str] = field(default_factory=set)
    pages_total: int = 0
    pages_done: int = 0
    pages_failed: int = 0
    cancelled: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    completed_event_sent: bool = False
    last_activity_at: datetime | None = None
    # Dispatch: documents waiting for ingest and out at ingest; pages waiting and queued for OCR.
    document_queue: deque[str] = field(default_factory=deque)
    documents_out: set[str] = field(default_factory=set)
    # Documents that may have been handed out before (restart, sweep, a failed publish).
    documents_again: set[str] = field(default_factory=set)
    page_queue: deque[PageTask] = field(default_factory=deque)
    pages_waiting: set[str] = field(default_factory=set)
    pages_out: set[str] = field(default_factory=set)
    # What the flush must write: the job record, and these documents' records.
    dirty: bool = True
    dirty_documents: set[str] = field(default_factory=set)
    # Documents being read (some pages have an outcome, not all): shown live in the job record.
    active: set[str] = field(default_factory=set)
    # How many times its failed pages were replayed: a document's final record is per round.
    round: int = 0
    applied_since_check: set[str] = field(default_factory=set)
    # When this process took the job over from stored records (None: it saw the job start).
    taken_over_at: datetime | None = None
    # How many pages go to a worker in one message (from how fast the job's pages are read).
    batching: BatchSizer = field(default_factory=BatchSizer)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)

    # --- documents -----------------------------------------------------------------------

    def add_document(self, doc_id: str, state: DocumentState | None = None) -> DocumentState:
        """Know a document (uploaded, or found in an archive); counted as queued until planned."""
        existing = self.documents.get(doc_id)
        if existing is not None:
            return existing
        document = state or DocumentState()
        self.documents[doc_id] = document
        self.status_counts[document.status] += 1
        self._note_failure(doc_id)
        if not document.error:
            self.pages_total += document.pages or 0
        return document

    def plan(
        self,
        doc_id: str,
        *,
        pages: int,
        error: str | None,
        members: Mapping[str, str] | None = None,
        duplicate_of: str | None = None,
        filename: str | None = None,
    ) -> bool:
        """Apply ingest's plan of a document (`members`: an archive's documents, id -> file
        name; a big archive names them over several plans, so they add up); False if it
        changes nothing (a repeat)."""
        document = self.add_document(doc_id)
        error = error or self._over_page_limit(document, pages)
        known = set(document.members)
        listed = document.members + tuple(member for member in members or {} if member not in known)
        new = (pages, error, listed, duplicate_of)
        if (document.pages, document.error, document.members, document.duplicate_of) == new:
            self._settled(doc_id)
            return False
        before = document.status
        if not document.error:
            self.pages_total -= document.pages or 0
        document.pages, document.error, document.members, document.duplicate_of = new
        document.filename = filename or document.filename
        if not document.error:
            self.pages_total += document.pages or 0
        self._moved(doc_id, before)
        for member, name in (members or {}).items():
            if member not in self.documents:
                self.add_document(member, DocumentState(filename=name, stored=False))
                self.dirty_documents.add(member)
        self._settled(doc_id)
        return True

    def _over_page_limit(self, document: DocumentState, pages: int) -> str | None:
        """Why the document's pages cannot be taken, if they would take the job over its limit."""
        others = self.pages_total - (0 if document.error else document.pages or 0)
        if others + pages <= self.max_pages:
            return None
        return (
            f"too many pages for one job: this document has {pages}, the job's other documents {others},"
            f" the limit is {self.max_pages}"
        )

    def _settled(self, doc_id: str) -> None:
        """A dispatched document came back from ingest: let the next one go."""
        self.documents_out.discard(doc_id)

    def _moved(self, doc_id: str, before: str) -> None:
        document = self.documents[doc_id]
        after = document.status
        if after == "processing" and document.done + document.failed:
            self.active.add(doc_id)
        else:
            self.active.discard(doc_id)
        if after != before:
            self.status_counts[before] -= 1
            self.status_counts[after] += 1
            self._note_failure(doc_id)
        self.dirty_documents.add(doc_id)
        self.dirty = True

    def _note_failure(self, doc_id: str) -> None:
        if self.documents[doc_id].status in ("failed", "partial"):
            self.failed_documents.add(doc_id)
        else:
            self.failed_documents.discard(doc_id)

    # --- pages -----------------------------------------------------------------------------

    def known(self, doc_id: str, page: int) -> bool:
        """The page has an outcome already (a redelivered or repeated one changes nothing)."""
        return page_id(doc_id, page) in self.outcomes

    def record(self, doc_id: str, page: int, outcome: PageOutcome, *, error: str | None = None) -> bool:
        """Count a page's first outcome; False if it had one."""
        key = page_id(doc_id, page)
        if key in self.outcomes:
            return False
        self.outcomes[key] = outcome
        self.applied_since_check.add(key)
        self.pages_out.discard(key)
        document = self.add_document(doc_id)
        before = document.status
        node = self.nodes.setdefault(outcome.node_id, NodeTally())
        if outcome.status == "done":
            self.batching.observe(outcome.busy_s)
            self.pages_done += 1
            document.done += 1
            node.pages_done += 1
            node.busy_seconds += outcome.busy_s
        else:
            self.pages_failed += 1
            document.failed += 1
            node.pages_failed += 1
            if document.first_failure is None:
                document.first_failure = f"page {page}: {error}"
        self._moved(doc_id, before)
        return True

    def forget(self, doc_id: str, page: int) -> None:
        """Take back a failed page's outcome (it is read again)."""
        outcome = self.outcomes.pop(page_id(doc_id, page), None)
        if outcome is None or outcome.status != "failed":
            if outcome is not None:
                self.outcomes[page_id(doc_id, page)] = outcome
            return
        document = self.documents[doc_id]
        before = document.status
        self.pages_failed -= 1
        document.failed -= 1
        if document.failed == 0:
            document.first_failure = None
        self.nodes[outcome.node_id].pages_failed -= 1
        self._moved(doc_id, before)

    # --- the job -----------------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        return "cancelled" if self.cancelled else job_status(self.status_counts)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "partial", "failed", "cancelled")

    def cancel(self) -> None:
        self.cancelled = True
        self.document_queue.clear()
        self.page_queue.clear()
        self.pages_waiting.clear()
        self.dirty = True

    # --- dispatch ------------------------------------------------------------------------------

    def queue_documents(self, doc_ids: Iterable[str], *, again: bool = False) -> None:
        """Documents to hand to ingest (those already planned, queued or out are skipped);
        `again`: they may have been handed out before."""
        for doc_id in doc_ids:
            if again:
                self.documents_again.add(doc_id)
            document = self.documents.get(doc_id)
            planned = document is not None and document.status != "queued"
            if not planned and doc_id not in self.documents_out and doc_id not in self.document_queue:
                self.document_queue.append(doc_id)

    def queue_pages(self, tasks: Iterable[PageTask]) -> None:
        """Pages to hand to OCR (those with an outcome, queued or out already are skipped)."""
        for task in tasks:
            key = page_id(task.doc_id, task.page)
            if key in self.outcomes or key in self.pages_waiting or key in self.pages_out:
                continue
            if (document := self.documents.get(task.doc_id)) is not None and document.error:
                continue  # refused as a whole (over the job's page limit): its pages are not read
            self.pages_waiting.add(key)
            self.page_queue.append(task)

    def next_documents(self) -> list[str]:
        """Documents to send now: as many as the window has room for."""
        if self.cancelled:
            return []
        sending = []
        while self.document_queue and len(self.documents_out) < self.document_window:
            doc_id = self.document_queue.popleft()
            self.documents_out.add(doc_id)
            sending.append(doc_id)
        return sending

    def next_pages(self) -> list[PageTask]:
        """Pages to send now: as many as the window has room for."""
        if self.cancelled:
            return []
        sending = []
        while self.page_queue and len(self.pages_out) < self.page_window:
            task = self.page_queue.popleft()
            key = page_id(task.doc_id, task.page)
            self.pages_waiting.discard(key)
            if key in self.outcomes:
                continue
            self.pages_out.add(key)
            sending.append(task)
        return sending

    def not_sent(self, doc_ids: Iterable[str] = (), tasks: Iterable[PageTask] = ()) -> None:
        """A publish failed: put the work back at the front, to be sent again."""
        for doc_id in reversed(list(doc_ids)):
            self.documents_again.add(doc_id)
            self.documents_out.discard(doc_id)
            self.document_queue.appendleft(doc_id)
        for task in reversed(list(tasks)):
            key = page_id(task.doc_id, task.page)
            self.pages_out.discard(key)
            if key not in self.outcomes:
                self.pages_waiting.add(key)
                self.page_queue.appendleft(task)

    def restart_dispatch(self) -> None:
        """Forget what was handed out (it may have been lost with nsqd): the caller queues
        the unfinished work again from the database."""
        self.documents_out.clear()
        self.document_queue.clear()
        self.pages_out.clear()
        self.pages_waiting.clear()
        self.page_queue.clear()

    # --- the record -------------------------------------------------------------------------------

    def progress_fields(self, last_seen: Mapping[str, datetime]) -> dict[str, Any]:
        """What the job's record shows of its progress."""
        return {
            "status": self.status,
            "pages_total": self.pages_total,
            "pages_done": self.pages_done,
            "pages_failed": self.pages_failed,
            # Every status, zeros included: FerretDB v1 can leave the keys of an embedded
            # document in place when a $set of several fields drops them.
            "documents_by_status": {status: self.status_counts[status] for status in DOCUMENT_STATUSES},
            "documents_failed": sorted(self.failed_documents)[:FAILED_DOCUMENTS_SHOWN],
            "documents_failed_total": len(self.failed_documents),
            # A list, not a mapping keyed by document: FerretDB v1 can keep keys a $set drops.
            "documents_active": [
                {"doc_id": doc_id, **self.documents[doc_id].record_fields()}
                for doc_id in sorted(self.active)[:ACTIVE_DOCUMENTS_SHOWN]
            ],
            "replays": self.round,
            "nodes": {
                node_id: {
                    "pages_done": tally.pages_done,
                    "pages_failed": tally.pages_failed,
                    "busy_seconds": round(tally.busy_seconds, 3),
                    "last_seen": last_seen.get(node_id),
                }
                for node_id, tally in sorted(self.nodes.items())
            },
        }


ACTIVE_DOCUMENTS_SHOWN = 200
"""The job's record shows at most this many documents being read live (a window of pages
out makes it rare to have more; the others show their plan until they finish)."""

FAILED_DOCUMENTS_SHOWN = 100
"""The job's record names at most this many failed documents (the documents route has all)."""
