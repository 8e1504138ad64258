"""The aggregator's coordinator against the real servers: tallies that survive a restart,
work handed out a window at a time, and the slow check that finds drift."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from bulkocr.contracts import DOCUMENT, DocumentPlanned, DocumentTask, JobSubmitted, PageDone, PageTask, Topic
from bulkocr.mongo import Database, outcome_records
from bulkocr.nsq import Delivery, NsqAdmin, NsqPublisher, consuming
from bulkocr.settings import NsqSettings
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_aggregator.state import Windows
from bulkocr_aggregator.writes import batch_writer
from tests.integration.test_pipeline_services import collecting, collecting_pages, submit
from tests.integration.test_store import page_done, page_failed
from tests.stores import SeedStore
from tests.waiting import eventually


def task(job_id: str, page: int, doc_id: str = "d0001") -> PageTask:
    image = f"jobs/{job_id}/pages/{doc_id}/{page:05d}.png"
    return PageTask(job_id=job_id, doc_id=doc_id, page=page, image=image, dpi=300, engine="null")


async def test_a_restarted_aggregator_rebuilds_the_tallies_and_counts_nothing_twice(
    store: SeedStore, db: Database, publisher: NsqPublisher, jobs: Coordinator
):
    """Outcomes stored by one aggregator are counted by the next one, which takes the job over
    with one scan; results redelivered to it after the restart count once."""
    job = await submit(store, db, {"a.pdf": b"%PDF", "b.pdf": b"%PDF"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=30))
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0002", pages=5))
    await jobs.flush()  # as the periodic flush does
    await store.add_page_tasks([task(job.job_id, page).model_dump(mode="json") for page in range(1, 31)])
    await asyncio.gather(*(jobs.outcome(page_done(page, job_id=job.job_id, doc_id="d0001")) for page in range(1, 21)))
    await jobs.outcome(page_failed(1, job_id=job.job_id, doc_id="d0002", node="n2"))

    async with batch_writer(db) as writer:
        restarted = Coordinator(store, writer, publisher, Windows(pages=5))
        with capture_logs() as logs:
            redelivered = [page_done(page, job_id=job.job_id, doc_id="d0001") for page in range(15, 26)]
            await asyncio.gather(*(restarted.outcome(done) for done in redelivered))
        state = restarted.in_memory(job.job_id)
        assert state is not None
        assert (state.pages_total, state.pages_done, state.pages_failed) == (35, 25, 1)
        assert state.nodes["n2"].pages_failed == 1
        assert [entry["event"] for entry in logs].count("job_taken_over") == 1
        # The pages without an outcome are handed out again from the manifest, a window at a time.
        await restarted.dispatch()
        assert sorted(state.pages_out) == [f"d0001/{page}" for page in range(26, 31)]
        await restarted.flush()
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert (saved["status"], saved["pages_done"], saved["pages_failed"]) == ("processing", 25, 1)


async def test_copies_of_an_outcome_at_once_or_redelivered_by_nsq_count_once(
    store: SeedStore, db: Database, publisher: NsqPublisher, nsq_settings: NsqSettings, nsq_admin: NsqAdmin, jobs
):
    """Ten copies of a result arriving together, and results NSQ delivers again after a crash
    before FIN, leave one record per page and exact tallies."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=4))
    await asyncio.gather(*(jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0001")) for _ in range(10)))

    topic = Topic(f"{job.job_id}-done", PageDone)
    await nsq_admin.create_channel(topic.name, "aggregator")
    deliveries: list[int] = []

    async def store_then_crash_once(done: PageDone, delivery: Delivery) -> None:
        deliveries.append(done.page)
        await jobs.outcome(done)
        if delivery.attempts == 1 and done.page == 3:
            raise RuntimeError("crashed before FIN")

    messages = [page_done(page, job_id=job.job_id, doc_id="d0001") for page in (2, 3, 4, 2, 4)]
    async with consuming(
        topic, "aggregator", store_then_crash_once, publisher=publisher, settings=nsq_settings, max_in_flight=3
    ):
        await publisher.publish_many(topic, messages)
        await eventually(lambda: len(deliveries) == 6, what="five deliveries and one redelivery")
    state = jobs.in_memory(job.job_id)
    assert state is not None
    assert (state.pages_done, state.pages_failed) == (4, 0)
    assert await store.pages.count_documents({"job_id": job.job_id}) == 4
    assert await store.page_results.count_documents({"job_id": job.job_id}) == 4


async def test_each_job_has_at_most_a_window_of_work_out(
    store: SeedStore, db: Database, publisher: NsqPublisher, nsq_settings, nsq_admin
):
    """A job's documents go to ingest `documents` at a time and its pages to OCR `pages` at a
    time; each outcome lets one more go. A second job's pages go out at once, not after the
    first job's backlog."""
    big = await submit(store, db, {f"{n}.pdf": f"%PDF {n}".encode() for n in range(1, 6)})
    small = await submit(store, db, {"small.pdf": b"%PDF small"})
    async with batch_writer(db) as writer:
        jobs = Coordinator(store, writer, publisher, Windows(pages=10, documents=2))
        dispatching = asyncio.create_task(jobs.dispatch_forever())
        try:
            async with (
                collecting(DOCUMENT, nsq_admin, publisher, nsq_settings, big.job_id) as documents,
                collecting_pages(nsq_admin, publisher, nsq_settings, big.job_id) as big_pages,
                collecting_pages(nsq_admin, publisher, nsq_settings, small.job_id) as small_pages,
            ):
                await jobs.submitted(big)
                await jobs.submitted(big)  # redelivered: nothing twice
                await eventually(lambda: len(documents) == 2, what="two documents at ingest")
                await jobs.planned(DocumentPlanned(job_id=big.job_id, doc_id="d0001", pages=100))
                await eventually(lambda: len(documents) == 3, what="the next document")
                await jobs.pages_ready([task(big.job_id, page) for page in range(1, 101)], big.job_id)
                await eventually(lambda: len(big_pages) == 10, what="a window of pages")
                await jobs.submitted(small)
                await jobs.planned(DocumentPlanned(job_id=small.job_id, doc_id="d0001", pages=2))
                await jobs.pages_ready([task(small.job_id, page) for page in (1, 2)], small.job_id)
                await eventually(lambda: len(small_pages) == 2, what="the small job's pages at once")
                for page in (1, 2, 3):
                    await jobs.outcome(page_done(page, job_id=big.job_id, doc_id="d0001"))
                await eventually(lambda: len(big_pages) == 13, what="one page more per outcome")
                state = jobs.in_memory(big.job_id)
                assert state is not None
                assert len(state.pages_out) == 10  # the window is full: nothing more went out
        finally:
            dispatching.cancel()
    assert [d.doc_id for d in documents] == ["d0001", "d0002", "d0003"]
    assert all(isinstance(d, DocumentTask) for d in documents)
    assert [t.page for t in big_pages] == list(range(1, 14))


async def test_cancel_stops_handing_out_work(store: SeedStore, db: Database, publisher, nsq_settings, nsq_admin, jobs):
    """Once a job is cancelled, its waiting pages are never published."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.submitted(JobSubmitted(job_id=job.job_id, owner="o", documents_total=1))
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=500))
    async with collecting_pages(nsq_admin, publisher, nsq_settings, job.job_id) as pages:
        await jobs.pages_ready([task(job.job_id, page) for page in range(1, 501)], job.job_id)
        await eventually(lambda: len(pages) == 200, what="a window of pages")
        await jobs.cancel(job.job_id)
        for page in range(1, 51):
            await jobs.outcome(page_done(page, job_id=job.job_id, doc_id="d0001"))
        state = jobs.in_memory(job.job_id)
        assert state is not None
        assert state.next_pages() == []  # nothing more of the job is handed out
    assert len(pages) == 200
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert saved["status"] == "cancelled"


async def test_the_slow_check_finds_and_counts_outcomes_it_missed(store: SeedStore, db: Database, jobs: Coordinator):
    """An outcome stored behind the aggregator's back is found by the recount, logged as
    drift, and counted; with nothing missed, the check is quiet."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=3))
    await jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0001"))
    with capture_logs() as quiet:
        assert await jobs.check(job.job_id) == 0
    assert not [entry for entry in quiet if entry["event"] == "tally_drift"]
    await store.record_outcome(page_done(2, job_id=job.job_id, doc_id="d0001"))
    with capture_logs() as logs:
        assert await jobs.check(job.job_id) == 1
    assert [entry["uncounted"] for entry in logs if entry["event"] == "tally_drift"] == [1]
    state = jobs.in_memory(job.job_id)
    assert state is not None
    assert state.pages_done == 2


async def test_an_outcome_the_previous_aggregator_stored_after_the_take_over_is_no_drift(
    store: SeedStore, db: Database, publisher: NsqPublisher, jobs: Coordinator
):
    """kill -9 can land while the previous aggregator's write is on its way to the database,
    which commits it after the new aggregator's take-over scan. The slow check counts it as a
    late outcome, not as drift; one stored behind its back after the take-over is still drift."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=5))
    await jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0001"))
    await jobs.flush()
    on_its_way = outcome_records(page_done(2, job_id=job.job_id, doc_id="d0001"))  # made before the crash
    async with batch_writer(db) as writer:
        restarted = Coordinator(store, writer, publisher, Windows(pages=5))
        state = await restarted.job(job.job_id)
        assert state is not None
        assert state.pages_done == 1
        for collection, record in on_its_way:
            await db[collection].insert_one(record)
        await store.record_outcome(page_done(3, job_id=job.job_id, doc_id="d0001"))
        with capture_logs() as logs:
            assert await restarted.check(job.job_id) == 2
    assert state.pages_done == 3
    assert [entry["pages"] for entry in logs if entry["event"] == "late_outcomes_counted"] == [1]
    assert [entry["uncounted"] for entry in logs if entry["event"] == "tally_drift"] == [1]


async def test_results_for_a_job_that_does_not_exist_are_not_stored(store: SeedStore, jobs: Coordinator):
    """A late redelivery for a job removed by retention (or never created) recreates nothing."""
    await jobs.outcome(page_done(1, job_id="no-such-job", doc_id="d0001"))
    assert await store.pages.count_documents({"job_id": "no-such-job"}) == 0
    assert await store.page_results.count_documents({"job_id": "no-such-job"}) == 0


async def test_document_counts_follow_the_documents_through_every_flush(
    store: SeedStore, db: Database, jobs: Coordinator
):
    """The job record's counts by document status move with each flush (queued, then failed),
    the way the status route shows them."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.submitted(job)
    await jobs.flush()
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert {s: n for s, n in saved["documents_by_status"].items() if n} == {"queued": 1}
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", error="corrupt PDF"))
    await jobs.flush()
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert (saved["status"], {s: n for s, n in saved["documents_by_status"].items() if n}) == ("failed", {"failed": 1})


async def test_a_document_reads_as_it_stands_from_plan_to_replay_without_updating_its_record(
    store: SeedStore, db: Database, jobs: Coordinator
):
    """A document shows its plan, then its live counts while its pages are read, then its
    final state; a replay of its failed page shows it being read again and then completed.
    Its upload record is never rewritten (FerretDB updates cost a scan of the collection)."""
    job = await submit(store, db, {"a.pdf": b"%PDF", "b.pdf": b"%PDF b"})
    uploaded = await store.uploaded_document(job.job_id, "d0001")

    async def shown(doc_id: str = "d0001") -> tuple[str, int | None, int, int]:
        await jobs.flush()
        document = await store.get_document(job.job_id, doc_id)
        assert document is not None
        return document["status"], document["pages"], document["pages_done"], document["pages_failed"]

    await jobs.submitted(job)
    assert await shown() == ("queued", None, 0, 0)
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=3))
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0002", pages=1))
    assert await shown() == ("processing", 3, 0, 0)
    await store.add_page_tasks([task(job.job_id, page).model_dump(mode="json") for page in (1, 2, 3)])
    await jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0001"))
    assert await shown() == ("processing", 3, 1, 0)
    await jobs.outcome(page_failed(2, job_id=job.job_id, doc_id="d0001"))
    await jobs.outcome(page_done(3, job_id=job.job_id, doc_id="d0001"))
    await jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0002"))
    assert await shown() == ("partial", 3, 2, 1)
    assert await shown("d0002") == ("completed", 1, 1, 0)
    listed = await store.list_documents(job.job_id)
    assert [(d["doc_id"], d["status"]) for d in listed] == [("d0001", "partial"), ("d0002", "completed")]

    assert await jobs.replay_failed(job.job_id) == 1
    await jobs.outcome(page_done(2, job_id=job.job_id, doc_id="d0001"))
    assert await shown() == ("completed", 3, 3, 0)
    assert await shown("d0002") == ("completed", 1, 1, 0)  # its final record of round 0 still stands
    assert [d["status"] for d in await store.get_documents(job.job_id)] == ["completed", "completed"]
    assert await store.uploaded_document(job.job_id, "d0001") == uploaded


async def test_a_document_finishing_while_progress_is_written_gets_its_final_record(
    store: SeedStore, db: Database, jobs: Coordinator
):
    """The last outcome of a document can land while a flush is writing: the next flush
    still stores the document's final state (the flush marks only what it wrote)."""
    job = await submit(store, db, {"a.pdf": b"%PDF"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=2))
    await jobs.flush()
    await jobs.outcome(page_done(1, job_id=job.job_id, doc_id="d0001"))  # the document moved: due
    # Both writes go in one round of the batch writer; the outcome is counted first.
    await asyncio.gather(jobs.outcome(page_done(2, job_id=job.job_id, doc_id="d0001")), jobs.flush())
    await jobs.flush()
    document = await store.get_document(job.job_id, "d0001")
    assert document is not None
    assert (document["status"], document["pages_done"]) == ("completed", 2)
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert saved["status"] == "completed"
