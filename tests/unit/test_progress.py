"""The aggregator's in-memory job state: statuses from tallies, tallies from events, and the
windows that hand a job's work out a little at a time."""

from __future__ import annotations

from collections import Counter

import pytest

from bulkocr.contracts import PageTask
from bulkocr_aggregator.document_state import DocumentState, PageOutcome, job_status
from bulkocr_aggregator.state import JobState


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (DocumentState(), "queued"),
        (DocumentState(pages=3, done=1), "processing"),
        (DocumentState(pages=3, done=3), "completed"),
        (DocumentState(pages=3, done=2, failed=1), "partial"),
        (DocumentState(pages=2, failed=2), "failed"),
        (DocumentState(pages=0, error="corrupt PDF"), "failed"),
        (DocumentState(pages=0, members=("d0001-001",)), "expanded"),
        (DocumentState(pages=0, duplicate_of="d0001"), "duplicate"),
        (DocumentState(pages=0), "completed"),
    ],
)
def test_document_status_follows_its_pages(document: DocumentState, expected: str):
    """A document is queued until planned, then processing until every page has an outcome."""
    assert document.status == expected


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
        (["duplicate", "completed"], "completed"),
    ],
)
def test_job_status_follows_its_documents(statuses: list[str], expected: str):
    """A job finishes only when every document has; one bad document makes it partial, all bad failed."""
    assert job_status(Counter(statuses)) == expected


def job(documents: int = 2, *, page_window: int = 3, document_window: int = 1) -> JobState:
    state = JobState("j", page_window=page_window, document_window=document_window)
    for index in range(1, documents + 1):
        state.add_document(f"d{index:04d}")
    return state


def task(page: int, doc_id: str = "d0001") -> PageTask:
    return PageTask(job_id="j", doc_id=doc_id, page=page, image=f"img/{page}", dpi=300, engine="null")


def test_tallies_count_each_page_once_and_follow_plans():
    """Plans set the total (unreadable documents add none); a repeated outcome changes nothing;
    per-document and per-node tallies add up to the job's."""
    state = job(3)
    assert state.status == "queued"
    assert state.plan("d0001", pages=3, error=None)
    assert not state.plan("d0001", pages=3, error=None)  # a redelivered plan
    state.plan("d0002", pages=1, error=None)
    state.plan("d0003", pages=0, error="corrupt PDF")
    assert (state.pages_total, state.status) == (4, "processing")
    assert state.record("d0001", 1, PageOutcome("done", "a", 1.5))
    assert not state.record("d0001", 1, PageOutcome("done", "b", 9.0))
    state.record("d0001", 2, PageOutcome("done", "a", 0.5))
    state.record("d0001", 3, PageOutcome("done", "b", 1.0))
    state.record("d0002", 1, PageOutcome("failed", "b"), error="boom")
    assert (state.pages_done, state.pages_failed, state.status) == (3, 1, "partial")
    fields = state.progress_fields({})
    assert {status: n for status, n in fields["documents_by_status"].items() if n} == {"completed": 1, "failed": 2}
    assert fields["documents_failed"] == ["d0002", "d0003"]
    assert {n: (v["pages_done"], v["pages_failed"], v["busy_seconds"]) for n, v in fields["nodes"].items()} == {
        "a": (2, 0, 2.0),
        "b": (1, 1, 1.0),
    }
    assert state.documents["d0002"].pages_error == "1 page failed; page 1: boom"


def test_a_forgotten_failure_reopens_the_job():
    """Replaying a failed page takes its failure back: the job is processing again."""
    state = job(1)
    state.plan("d0001", pages=2, error=None)
    state.record("d0001", 1, PageOutcome("done", "a"))
    state.record("d0001", 2, PageOutcome("failed", "a"), error="boom")
    assert state.status == "partial"
    state.forget("d0001", 2)
    assert (state.status, state.pages_failed, state.nodes["a"].pages_failed) == ("processing", 0, 0)
    state.forget("d0001", 1)  # a done page is never taken back
    assert state.pages_done == 1


def test_an_archive_adds_its_members_as_documents():
    state = job(1)
    state.plan("d0001", pages=0, error=None, members={"d0001-001": "a.zip/x.png", "d0001-002": "a.zip/y.txt"})
    assert state.status_counts == Counter({"expanded": 1, "queued": 2})
    state.plan("d0001-001", pages=1, error=None)
    state.plan("d0001-002", pages=0, error="not a supported document")
    state.record("d0001-001", 1, PageOutcome("done", "a"))
    assert state.status == "partial"


def test_an_archive_named_over_several_plans_has_every_member_once():
    """A big archive's members come in several plans: they add up, in order, and a plan
    repeated (a redelivery) changes nothing."""
    state = job(1)
    first = {f"d0001-{n:03d}": f"a.zip/{n}.png" for n in range(1, 4)}
    second = {f"d0001-{n:03d}": f"a.zip/{n}.png" for n in range(4, 6)}
    assert state.plan("d0001", pages=0, error=None, members=first)
    assert state.plan("d0001", pages=0, error=None, members=second)
    assert not state.plan("d0001", pages=0, error=None, members=first)
    assert state.documents["d0001"].members == tuple([*first, *second])
    assert state.status_counts == Counter({"expanded": 1, "queued": 5})


def test_a_document_that_would_take_the_job_over_its_page_limit_fails_and_its_pages_stay_unread():
    """With a limit of 10 pages per job, a 5-page document after a 6-page one fails with the
    figures, a 4-page one still fits, a repeated plan changes nothing, and the refused
    document's pages are not queued for OCR."""
    state = JobState("j", page_window=10, document_window=3, max_pages=10)
    for doc_id, pages in (("d0001", 6), ("d0002", 5), ("d0003", 4)):
        state.plan(doc_id, pages=pages, error=None)
    assert state.documents["d0002"].error == (
        "too many pages for one job: this document has 5, the job's other documents 6, the limit is 10"
    )
    assert not state.plan("d0001", pages=6, error=None)
    assert state.pages_total == 10
    state.queue_pages([task(1, "d0002"), task(1, "d0003")])
    assert [(t.doc_id, t.page) for t in state.next_pages()] == [("d0003", 1)]
    assert state.status_counts == Counter({"failed": 1, "processing": 2})


def test_pages_go_out_a_window_at_a_time_and_never_twice():
    """At most `page_window` pages are out; an outcome lets the next one go; a page queued
    again (a repeated announcement) or with an outcome is not sent again."""
    state = job(1, page_window=3)
    state.queue_pages([task(page) for page in range(1, 8)])
    state.queue_pages([task(1), task(2)])
    assert [t.page for t in state.next_pages()] == [1, 2, 3]
    assert state.next_pages() == []
    state.record("d0001", 2, PageOutcome("done", "a"))
    assert [t.page for t in state.next_pages()] == [4]
    state.record("d0001", 5, PageOutcome("done", "a"))  # read before it was handed out (a duplicate)
    state.record("d0001", 1, PageOutcome("done", "a"))
    assert [t.page for t in state.next_pages()] == [6]
    state.not_sent(tasks=[task(6)])
    assert [t.page for t in state.next_pages()] == [6]


def test_documents_go_out_a_window_at_a_time_and_cancel_stops_everything():
    state = job(3, document_window=2)
    state.queue_documents(["d0001", "d0002", "d0003", "d0001"])
    assert state.next_documents() == ["d0001", "d0002"]
    assert state.next_documents() == []
    state.plan("d0001", pages=2, error=None)
    assert state.next_documents() == ["d0003"]
    state.queue_pages([task(1), task(2)])
    state.cancel()
    assert (state.next_documents(), state.next_pages(), state.status) == ([], [], "cancelled")
