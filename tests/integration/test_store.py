"""JobStore against the real MongoDB-wire server: page results are stored once, whatever is redelivered."""

from __future__ import annotations

import asyncio

from bulkocr.contracts import PageDone, PageFailed, PageTimings, Topic
from bulkocr.mongo import JobStore
from bulkocr.nsq import Delivery, NsqAdmin, NsqPublisher, consuming
from bulkocr.page_model import Block, Box, Line, PageText
from bulkocr.settings import NsqSettings
from tests.waiting import eventually


def page_done(
    page: int, *, node: str = "node-a", seconds: float = 2.0, job_id: str = "job-1", doc_id: str = "doc-1"
) -> PageDone:
    box = Box(x0=10, y0=10, x1=200, y1=40)
    text = PageText(
        width=1000,
        height=1400,
        engine="null",
        blocks=[Block(box=box, lines=[Line(text=f"page {page}", box=box, confidence=0.9)])],
    )
    return PageDone(
        job_id=job_id,
        doc_id=doc_id,
        page=page,
        node_id=node,
        worker_id=f"{node}-w1",
        attempts=1,
        timings=PageTimings(total_s=seconds),
        result=text,
    )


def page_failed(page: int, *, node: str = "node-a", job_id: str = "job-1", doc_id: str = "doc-1") -> PageFailed:
    return PageFailed(
        job_id=job_id, doc_id=doc_id, page=page, node_id=node, worker_id=f"{node}-w1", attempts=3, error="boom"
    )


async def test_concurrent_duplicates_of_a_result_count_once(store: JobStore):
    """Ten copies of the same result written at once leave one page document and a count of one."""
    outcomes = await asyncio.gather(*(store.record_page_done(page_done(1)) for _ in range(10)))
    assert outcomes.count(True) == 1
    assert await store.pages.count_documents({}) == 1
    assert await store.page_counts("job-1") == {"done": 1, "failed": 0}


async def test_results_redelivered_through_nsq_are_stored_once(
    store: JobStore, publisher: NsqPublisher, nsq_settings: NsqSettings, nsq_admin: NsqAdmin, topic_name: str
):
    """A consumer that crashes after writing (so NSQ redelivers) and duplicate publishes still give exact counts."""
    topic = Topic(topic_name, PageDone)
    await nsq_admin.create_channel(topic.name, "aggregator")
    deliveries: list[int] = []

    async def store_then_crash_once(done: PageDone, delivery: Delivery) -> None:
        deliveries.append(done.page)
        await store.record_page_done(done)
        if delivery.attempts == 1 and done.page == 2:
            raise RuntimeError("crashed before FIN")

    messages = [page_done(1), page_done(2), page_done(3), page_done(1), page_done(3)]
    async with consuming(
        topic, "aggregator", store_then_crash_once, publisher=publisher, settings=nsq_settings, max_in_flight=3
    ):
        await publisher.publish_many(topic, messages)
        await eventually(lambda: len(deliveries) == 6, what="five deliveries and one redelivery")
    assert await store.page_counts("job-1") == {"done": 3, "failed": 0}
    assert await store.pages.count_documents({"job_id": "job-1"}) == 3


async def test_a_failure_never_overwrites_a_result_but_a_result_replaces_a_failure(store: JobStore):
    """done beats failed in either order, so a replayed page ends done and a late failure changes nothing."""
    assert await store.record_page_failed(page_failed(1))
    assert await store.record_page_done(page_done(1))
    assert await store.record_page_done(page_done(2))
    assert not await store.record_page_failed(page_failed(2))
    assert not await store.record_page_failed(page_failed(1))
    assert await store.page_counts("job-1") == {"done": 2, "failed": 0}
    assert await store.record_page_failed(page_failed(3))
    assert await store.page_counts("job-1") == {"done": 2, "failed": 1}


async def test_per_node_progress_adds_up_to_the_job(store: JobStore):
    """Per-node pages done/failed and busy seconds are counted from the page results."""
    for page, node in [(1, "a"), (2, "a"), (3, "b")]:
        await store.record_page_done(page_done(page, node=node, seconds=1.5))
    await store.record_page_failed(page_failed(4, node="b"))
    nodes = await store.node_counts("job-1")
    assert nodes == {
        "a": {"pages_done": 2, "pages_failed": 0, "busy_seconds": 3.0},
        "b": {"pages_done": 1, "pages_failed": 1, "busy_seconds": 1.5},
    }
    counts = await store.page_counts("job-1")
    assert sum(n["pages_done"] for n in nodes.values()) == counts["done"]
    assert sum(n["pages_failed"] for n in nodes.values()) == counts["failed"]


async def test_jobs_are_created_once(store: JobStore):
    """Inserting a job id twice keeps the first job and reports the second as a repeat."""
    assert await store.insert_job({"_id": "job-9", "owner": "alice"})
    assert not await store.insert_job({"_id": "job-9", "owner": "mallory"})
    job = await store.get_job("job-9")
    assert job is not None
    assert job["owner"] == "alice"
