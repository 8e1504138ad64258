"""Replaying failed pages, cancelling, sweeping and retention, against the real servers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import JOB_COMPLETED, DocumentPlanned, JobCompleted, PageTask, utcnow
from bulkocr.settings import BlobSettings
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_aggregator.sweeper import Retention, Sweeper
from tests.integration.test_pipeline_services import collecting, collecting_pages, submit
from tests.integration.test_store import page_done, page_failed
from tests.stores import SeedStore
from tests.waiting import eventually


def task(job_id: str, page: int) -> PageTask:
    return PageTask(
        job_id=job_id,
        doc_id="d0001",
        page=page,
        image=f"jobs/{job_id}/pages/d0001/{page:05d}.png",
        dpi=300,
        engine="null",
    )


async def planned_job(store: SeedStore, db, jobs: Coordinator, pages: int) -> str:
    job = await submit(store, db, {"a.pdf": b"%PDF-1.4"})
    await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=pages))
    await store.add_page_tasks([task(job.job_id, page).model_dump(mode="json") for page in range(1, pages + 1)])
    return job.job_id


async def test_failed_pages_are_replayed_and_the_job_finishes_again(
    store, db, publisher, nsq_settings, nsq_admin, jobs: Coordinator
):
    """retry-failed forgets a page's failure, publishes its task again, reopens the job, and the
    job completes (and is announced again) once the page is read."""
    job_id = await planned_job(store, db, jobs, pages=2)
    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001"))
    await jobs.outcome(page_failed(2, job_id=job_id, doc_id="d0001"))
    await jobs.flush()
    job = await store.get_job(job_id)
    assert job is not None
    assert job["status"] == "partial"

    async with collecting_pages(nsq_admin, publisher, nsq_settings, job_id) as tasks:
        assert await jobs.replay_failed(job_id) == 1
        await eventually(lambda: len(tasks) == 1, what="the failed page's task")
        await asyncio.sleep(0.3)  # and no other within this time
    assert tasks == [task(job_id, 2)]
    job = await store.get_job(job_id)
    assert job is not None
    assert (job["status"], job["pages_failed"], job["finished_at"]) == ("processing", 0, None)

    completed = JobCompleted(job_id=job_id, status="completed")
    async with collecting(JOB_COMPLETED, nsq_admin, publisher, nsq_settings, job_id) as completions:
        await jobs.outcome(page_done(2, job_id=job_id, doc_id="d0001"))
        await jobs.flush()
        await eventually(lambda: completed in completions, what="the completed announcement")
        await asyncio.sleep(0.5)  # and no second one within this time
    # (The first, partial announcement may show up too: it waited in the topic for a channel.)
    assert completions[-1] == JobCompleted(job_id=job_id, status="completed")
    assert completions.count(JobCompleted(job_id=job_id, status="completed")) == 1


async def test_a_cancelled_job_stays_cancelled_whatever_arrives_later(store, db, jobs: Coordinator):
    """Cancel marks the job cancelled and finished; later results are stored but do not revive it."""
    job_id = await planned_job(store, db, jobs, pages=3)
    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001"))
    await jobs.cancel(job_id)
    await jobs.outcome(page_done(2, job_id=job_id, doc_id="d0001"))
    await jobs.flush()
    job = await store.get_job(job_id)
    assert job is not None
    assert job["status"] == "cancelled"
    assert job["finished_at"] is not None
    assert (job["pages_total"], job["pages_done"], job["pages_failed"]) == (3, 2, 0)
    assert await jobs.replay_failed(job_id) == 0


async def test_sweeper_publishes_again_the_pages_of_a_quiet_job(
    store, db, publisher, nsq_settings, nsq_admin, jobs: Coordinator
):
    """Pages with no outcome in a job idle past the deadline are published again from the manifest;
    pages already done are not."""
    job_id = await planned_job(store, db, jobs, pages=3)
    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001"))
    state = jobs.in_memory(job_id)
    assert state is not None
    state.last_activity_at = utcnow() - timedelta(seconds=60)
    async with aiohttp.ClientSession() as session:
        sweeper = Sweeper(store, jobs, session, nsq_settings, idle_s=30, max_idle_s=30)
        async with collecting_pages(nsq_admin, publisher, nsq_settings, job_id) as tasks:
            await sweeper.sweep()
            await sweeper.sweep()  # just swept: not idle any more, so nothing twice
            await eventually(lambda: len(tasks) >= 2, what="the pages without an outcome")
            await asyncio.sleep(0.5)  # and none published twice within this time
    assert sorted(t.page for t in tasks) == [2, 3]


async def test_retention_removes_only_old_finished_jobs_with_their_blobs(store, db, jobs: Coordinator):
    """A finished job past the retention loses its records (OCR text included) and blobs; a
    running job and a recently finished one are untouched."""
    blobs = make_blob_store(BlobSettings(), db)
    old = await planned_job(store, db, jobs, pages=1)
    recent = await planned_job(store, db, jobs, pages=1)
    running = await planned_job(store, db, jobs, pages=2)
    for job_id in (old, recent, running):
        await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001"))
        await blobs.put(f"jobs/{job_id}/pages/d0001/00001.png", b"png")
    await jobs.flush()
    await store.set_job_fields(old, {"finished_at": utcnow() - timedelta(hours=25)})
    await store.set_job_fields(running, {"created_at": utcnow() - timedelta(days=3)})

    removed = await Retention(store, blobs, keep_s=24 * 3600).remove_expired()

    assert removed == [old]
    assert await store.get_job(old) is None
    assert await store.get_documents(old) == []
    assert await store.pages.count_documents({"job_id": old}) == 0
    assert await store.page_results.count_documents({"job_id": old}) == 0
    assert not await blobs.exists(f"jobs/{old}/pages/d0001/00001.png")
    assert not await blobs.exists(f"jobs/{old}/uploads/d0001")
    for kept in (recent, running):
        assert await store.get_job(kept) is not None
        assert await blobs.exists(f"jobs/{kept}/pages/d0001/00001.png")
