"""The job stores against the real MongoDB-wire server: page results are stored once, whatever is redelivered."""

from __future__ import annotations

import json

from bulkocr.contracts import DocumentRef, JobOptions, PageDone, PageFailed, PageTimings, document_id
from bulkocr.mongo import new_job, stored_result
from bulkocr.page_model import Block, Box, Line, PageText
from tests.stores import SeedStore


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


async def page_counts(store: SeedStore, job_id: str) -> dict[str, int]:
    done = await store.pages.count_documents({"job_id": job_id, "status": "done"})
    failed = await store.pages.count_documents({"job_id": job_id, "status": "failed"})
    return {"done": done, "failed": failed}


async def test_an_outcome_is_stored_once_and_the_first_one_stays(store: SeedStore):
    """A page's first outcome is kept: a repeat, or a late outcome of another kind, changes nothing."""
    assert await store.record_outcome(page_done(1))
    assert not await store.record_outcome(page_done(1))
    assert not await store.record_outcome(page_failed(1))
    assert await store.record_outcome(page_failed(2))
    assert not await store.record_outcome(page_done(2))
    assert await page_counts(store, "job-1") == {"done": 1, "failed": 1}
    page_one = await store.page_results.find_one({"_id": "job-1/doc-1/1"})
    assert page_one is not None
    result = stored_result(page_one)
    assert result is not None
    assert result["blocks"][0]["lines"][0]["text"] == "page 1"


async def test_a_result_is_kept_compressed_and_one_stored_by_an_earlier_version_still_reads(store: SeedStore):
    """A page's result is one compressed field (FerretDB reads a nested one at tens of ms a
    page); a result stored as a nested document before that reads the same."""
    done = page_done(1)
    assert done.result is not None
    await store.record_outcome(done)
    record = await store.page_results.find_one({"_id": "job-1/doc-1/1"})
    assert record is not None
    assert "result" not in record
    assert len(record["result_json_z"]) < len(done.result.model_dump_json())
    older = page_done(2)
    assert older.result is not None
    await store.record_outcome(older)
    await store.page_results.replace_one(
        {"_id": "job-1/doc-1/2"}, {"job_id": "job-1", "result": older.result.model_dump(), "result_blob": None}
    )
    pages = await store.get_pages("job-1", "doc-1")
    assert [PageText.model_validate(page["result"]) for page in pages] == [done.result, older.result]


async def test_a_job_of_thousands_of_documents_is_stored_in_batches(store: SeedStore):
    """5,000 documents go in with a handful of inserts; a repeat (a retried request) changes
    nothing; the job record comes last and counts them."""
    refs = [
        DocumentRef(doc_id=document_id(n), filename=f"box-12/folder-{n:05d}.png", blob=f"b/{n}", size=1, sha256=f"{n}")
        for n in range(1, 5001)
    ]
    assert await store.create_job("big", "alice", JobOptions(), refs)
    assert not await store.create_job("big", "alice", JobOptions(), refs)
    assert await store.count_documents("big") == 5000
    job = await store.get_job("big")
    assert job is not None
    assert job["documents_total"] == 5000
    page = await store.list_documents("big", skip=4990, limit=20)
    assert [d["doc_id"] for d in page] == [document_id(n) for n in range(4991, 5001)]


async def test_page_tasks_are_recorded_once(store: SeedStore):
    """The manifest keeps one entry per page, however often a batch is recorded again."""
    tasks = [{"job_id": "j", "doc_id": "d0001", "page": page, "image": f"i/{page}"} for page in range(1, 101)]
    await store.add_page_tasks(tasks[:60])
    await store.add_page_tasks(tasks)
    assert sorted(t["page"] for t in await store.page_tasks_of("j")) == list(range(1, 101))


async def test_jobs_are_created_once(store: SeedStore):
    """Inserting a job id twice keeps the first job and reports the second as a repeat."""
    assert await store.insert_job(new_job("job-9", "alice", JobOptions(), 1))
    assert not await store.insert_job(new_job("job-9", "mallory", JobOptions(), 1))
    job = await store.get_job("job-9")
    assert job is not None
    assert job["owner"] == "alice"


async def test_idempotency_keys_of_different_owners_never_collide(store: SeedStore):
    """Owner `a/b` with key `c` and owner `a` with key `b/c` each hold their own claim."""
    assert await store.claim_idempotency_key("a/b", "c", "job-of-ab") == "job-of-ab"
    assert await store.claim_idempotency_key("a", "b/c", "job-of-a") == "job-of-a"
    assert await store.claim_idempotency_key("a", "b/c", "a-retry") == "job-of-a"


async def test_a_lookup_by_key_is_answered_from_the_id_index(store: SeedStore):
    """What the services read per page or per document they read by `_id`, so that it costs the
    same on a full database. The server must answer it from the `_id` index: FerretDB 1.24
    as released read the whole table instead (its SQLite lookup did not match its index), which
    deploy/build-servers.sh mends; on MongoDB it is an `_id` plan."""
    await store.documents.insert_many([{"_id": f"job-9/d{n:04d}", "job_id": "job-9"} for n in range(1, 51)])
    for collection in ("documents", "pages", "page_results", "document_progress", "jobs"):
        explained = await store.db.command("explain", {"find": collection, "filter": {"_id": "job-9/d0007"}})
        plan = json.dumps(explained.get("queryPlanner"), default=str)
        uses_index = "USING INDEX" in plan and "__id_" in plan  # FerretDB's SQLite plan
        uses_index |= any(stage in plan for stage in ("IDHACK", "EXPRESS_IXSCAN", '"IXSCAN"'))  # MongoDB's
        assert uses_index, f"{collection}: {plan}"
