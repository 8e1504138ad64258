"""What the aggregator knows of one document (its plan and page tallies, the status they
make), of a page's outcome and of a node's work; and a job's status from its documents'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bulkocr.contracts import JobStatus, PageDone, PageFailed

Outcome = Literal["done", "failed"]
DOCUMENT_STATUSES = ("queued", "processing", "completed", "partial", "failed", "expanded", "duplicate")


def page_id(doc_id: str, page: int) -> str:
    """A page's key within its job."""
    return f"{doc_id}/{page}"


@dataclass
class DocumentState:
    pages: int | None = None
    error: str | None = None
    members: tuple[str, ...] = ()
    duplicate_of: str | None = None
    filename: str | None = None
    done: int = 0
    failed: int = 0
    first_failure: str | None = None
    # False for a document found inside an archive until its record is written.
    stored: bool = True
    # Whether its plan record is stored, and the round of its stored final record.
    plan_stored: bool = False
    final_round: int | None = None

    @property
    def expanded(self) -> bool:
        return bool(self.members)

    @property
    def status(self) -> str:
        """queued until planned; failed when unreadable; expanded for an archive, duplicate
        for a file seen earlier in the job; then by its pages."""
        if self.error:
            return "failed"
        if self.expanded:
            return "expanded"
        if self.duplicate_of:
            return "duplicate"
        if self.pages is None:
            return "queued"
        if self.done + self.failed < self.pages:
            return "processing"
        if self.failed == 0:
            return "completed"
        return "partial" if self.done else "failed"

    @property
    def pages_error(self) -> str | None:
        """A summary of its failed pages: how many, and the first one's cause."""
        if not self.failed:
            return None
        return f"{self.failed} page{'s' if self.failed > 1 else ''} failed; {self.first_failure or 'see its pages'}"

    def record_fields(self) -> dict[str, Any]:
        """What the document's record shows: its plan and its progress."""
        fields: dict[str, Any] = {
            "pages": self.pages,
            "error": self.error,
            "members": list(self.members),
            "duplicate_of": self.duplicate_of,
            **self.progress_fields(),
        }
        if self.filename is not None:
            fields["filename"] = self.filename
        return fields

    @property
    def planned(self) -> bool:
        return self.pages is not None or bool(self.error or self.members or self.duplicate_of)

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "processing")

    def plan_fields(self) -> dict[str, Any]:
        """What the document's record shows as soon as it is planned, before any page is read."""
        planned = DocumentState(self.pages, self.error, self.members, self.duplicate_of, self.filename)
        return planned.record_fields()

    def progress_fields(self) -> dict[str, Any]:
        """What the document's record shows of its progress."""
        return {
            "status": self.status,
            "pages_done": self.done,
            "pages_failed": self.failed,
            "pages_error": self.pages_error,
        }


@dataclass
class NodeTally:
    pages_done: int = 0
    pages_failed: int = 0
    busy_seconds: float = 0.0


@dataclass(frozen=True)
class PageOutcome:
    status: Outcome
    node_id: str
    busy_s: float = 0.0

    @classmethod
    def of(cls, report: PageDone | PageFailed) -> PageOutcome:
        if isinstance(report, PageDone):
            return cls("done", report.node_id, report.timings.total_s)
        return cls("failed", report.node_id)


def job_status(counts: Mapping[str, int]) -> JobStatus:
    """The job's status from how many of its documents are in each status."""
    total = sum(counts.values())
    if not total or counts.get("queued", 0) == total:
        return "queued"
    if counts.get("queued", 0) or counts.get("processing", 0):
        return "processing"
    # Archives and duplicates have no pages of their own: the documents they stand for count.
    readable = total - counts.get("expanded", 0) - counts.get("duplicate", 0)
    if readable and counts.get("failed", 0) == readable:
        return "failed"
    if counts.get("failed", 0) or counts.get("partial", 0):
        return "partial"
    return "completed"
