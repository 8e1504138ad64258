"""Pure rules for document and job status, from counts the store provides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bulkocr.contracts import FINISHED_STATUSES, JobStatus

FINISHED = FINISHED_STATUSES


def document_status(document: Mapping[str, Any], done: int, failed: int) -> str:
    """queued until planned; failed when unreadable; expanded for an archive, duplicate for a
    file seen earlier in the job; then by its pages."""
    if document.get("error"):
        return "failed"
    if document.get("members"):
        return "expanded"
    if document.get("duplicate_of"):
        return "duplicate"
    pages = document.get("pages")
    if pages is None:
        return "queued"
    if done + failed < pages:
        return "processing"
    if failed == 0:
        return "completed"
    return "partial" if done else "failed"


def job_status(documents: Sequence[Mapping[str, Any]], statuses: Sequence[str]) -> JobStatus:
    """The job's status from its documents' statuses."""
    if not documents or all(status == "queued" for status in statuses):
        return "queued"
    if any(status in ("queued", "processing") for status in statuses):
        return "processing"
    # Archives and duplicates have no pages of their own: the documents they stand for count.
    readable = [status for status in statuses if status not in ("expanded", "duplicate")]
    if readable and all(status == "failed" for status in readable):
        return "failed"
    if any(status in ("failed", "partial") for status in readable):
        return "partial"
    return "completed"


def pages_total(documents: Sequence[Mapping[str, Any]]) -> int:
    return sum(int(document.get("pages") or 0) for document in documents if not document.get("error"))
