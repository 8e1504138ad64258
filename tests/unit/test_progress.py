"""The rules that turn page counts into document and job statuses."""

from __future__ import annotations

import pytest

from bulkocr_aggregator.progress import document_status, job_status, pages_total


@pytest.mark.parametrize(
    ("document", "done", "failed", "expected"),
    [
        ({"pages": None}, 0, 0, "queued"),
        ({"pages": 3}, 1, 0, "processing"),
        ({"pages": 3}, 3, 0, "completed"),
        ({"pages": 3}, 2, 1, "partial"),
        ({"pages": 2}, 0, 2, "failed"),
        ({"pages": 0, "error": "corrupt PDF"}, 0, 0, "failed"),
        ({"pages": 0, "members": ["d1-001"]}, 0, 0, "expanded"),
        ({"pages": 0}, 0, 0, "completed"),
    ],
)
def test_document_status_follows_its_pages(document: dict[str, object], done: int, failed: int, expected: str):
    """A document is queued until planned, then processing until every page has an outcome."""
    assert document_status(document, done, failed) == expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "queued"),
        (["queued", "queued"], "queued"),
        (["completed", "queued"], "processing"),
        (["completed", "processing"], "processing"),
        (["completed", "completed"], "completed"),
        (["completed", "failed"], "partial"),
        (["partial"], "partial"),
        (["failed", "failed"], "failed"),
        (["expanded", "completed"], "completed"),
        (["expanded", "failed"], "failed"),
    ],
)
def test_job_status_follows_its_documents(statuses: list[str], expected: str):
    """A job finishes only when every document has; one bad document makes it partial, all bad failed."""
    documents = [{"doc_id": str(index)} for index in range(len(statuses))]
    assert job_status(documents, statuses) == expected


def test_unreadable_documents_add_no_pages():
    """pages_total counts the pages of readable documents only."""
    assert pages_total([{"pages": 4}, {"pages": None}, {"pages": 0, "error": "x"}, {"pages": 2}]) == 6
