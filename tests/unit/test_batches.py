"""A job's pages go to the workers one a message while they take long to read, and several
a message once the job shows they are read in milliseconds."""

from __future__ import annotations

from bulkocr.contracts import PageTask
from bulkocr_aggregator.batches import BatchSizer
from bulkocr_aggregator.state import Windows


def tasks(count: int) -> list[PageTask]:
    return [
        PageTask(job_id="j", doc_id="d0001", page=n, image=f"k{n}", dpi=300, engine="null") for n in range(1, count + 1)
    ]


def sizer_after(page_seconds: float, seconds: float = 0.2, most: int = 32) -> BatchSizer:
    """A sizer that saw twenty pages read in `page_seconds` each."""
    sizer = BatchSizer(seconds=seconds, most=most)
    for _ in range(20):
        sizer.observe(page_seconds)
    return sizer


def test_pages_go_one_a_message_until_the_job_shows_they_are_quick():
    assert BatchSizer().size == 1  # nothing read yet
    assert sizer_after(2.5).size == 1  # real OCR: seconds a page
    assert sizer_after(0.05, seconds=0.2, most=32).size == 4
    assert sizer_after(0.001, seconds=0.2, most=32).size == 32
    assert sizer_after(0.0, seconds=0.2, most=32).size == 32
    assert sizer_after(0.001, seconds=0.0, most=32).size == 1  # batching turned off


def test_the_size_follows_the_job_when_its_pages_get_slow():
    """A document of blank pages, then one of dense scans: within a few pages the batches
    are single pages again, so a slow page never holds quick ones hostage for long."""
    sizer = sizer_after(0.001)
    assert sizer.size == 32
    for _ in range(10):
        sizer.observe(1.5)
    assert sizer.size == 1


def test_batches_keep_every_task_once_and_in_order():
    sizer = sizer_after(0.05, seconds=0.2, most=32)
    batches = sizer.batches("j", tasks(10))
    assert [len(batch.tasks) for batch in batches] == [4, 4, 2]
    assert [task for batch in batches for task in batch.tasks] == tasks(10)
    assert all(batch.job_id == "j" for batch in batches)


def test_a_job_starts_at_the_pace_of_its_engines_latest_pages():
    """The first window of a job of quick pages goes in batches when the aggregator has just
    read that engine's quick pages, not one page a message; another engine's pace is not
    taken, and a slower job corrects the size with its first page."""
    windows = Windows(batch_seconds=0.2, batch_pages=32)
    earlier = windows.sizer("null")
    assert earlier.size == 1  # nothing known of the engine yet
    for _ in range(20):
        earlier.observe(0.001)

    assert windows.sizer("null").size == 32
    assert windows.sizer("rapidocr").size == 1

    slower = windows.sizer("null")
    slower.observe(0.05)
    assert slower.size == 4  # its own first page, not a blend with the earlier job's
