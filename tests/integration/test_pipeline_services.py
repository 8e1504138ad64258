"""Ingest and aggregator handlers against the real servers: what they publish and what they store."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from bulkocr.blobs import make_blob_store
from bulkocr.contracts import (
    DOCUMENT_PLANNED,
    JOB_COMPLETED,
    PAGE_BATCH,
    PAGES_READY,
    DocumentPlanned,
    DocumentRef,
    DocumentTask,
    JobCompleted,
    JobOptions,
    JobSubmitted,
    M,
    PagesReady,
    PageTask,
    Topic,
)
from bulkocr.mongo import Database
from bulkocr.nsq import Delivery, NsqAdmin, NsqPublisher, consuming
from bulkocr.settings import BlobSettings, NsqSettings
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_ingest.deps import Deps as IngestDeps
from bulkocr_ingest.service import handle_document
from bulkocr_ingest.settings import IngestSettings
from bulkocr_ingest.split_process import SplitProcesses
from tests.integration.test_store import page_done, page_failed
from tests.ocr_quality import TEST_DATA
from tests.stores import SeedStore
from tests.waiting import eventually


@asynccontextmanager
async def collecting(
    topic: Topic[M],
    admin: NsqAdmin,
    publisher: NsqPublisher,
    settings: NsqSettings,
    job_id: str,
    each: Callable[[M], Iterable[Any]] = lambda message: (message,),
) -> AsyncIterator[list[Any]]:
    """Every message of `job_id` published on the real topic while the block runs, on a
    channel of our own (or what `each` makes of each message)."""
    channel = f"test-{uuid.uuid4().hex[:8]}#ephemeral"
    await admin.create_channel(topic.name, channel)
    seen: list[Any] = []

    async def keep(message: M, delivery: Delivery) -> None:
        if getattr(message, "job_id", None) == job_id:
            seen.extend(each(message))

    async with consuming(topic, channel, keep, publisher=publisher, settings=settings, max_in_flight=50) as consumer:
        await consumer.wait_connected()
        yield seen


@asynccontextmanager
async def collecting_pages(
    admin: NsqAdmin, publisher: NsqPublisher, settings: NsqSettings, job_id: str
) -> AsyncIterator[list[PageTask]]:
    """Every page of `job_id` handed to OCR while the block runs, whatever batches they went in."""
    async with collecting(PAGE_BATCH, admin, publisher, settings, job_id, each=lambda batch: batch.tasks) as pages:
        yield pages


async def submit(
    store: SeedStore,
    db: Database,
    files: dict[str, bytes],
    *,
    duplicates: dict[str, str] | None = None,
    languages: dict[str, str] | None = None,
    language: str | None = None,
) -> JobSubmitted:
    """A job stored as the gateway stores it (files in the blob store, documents d0001...)."""
    blobs = make_blob_store(BlobSettings(), db)
    job_id = uuid.uuid4().hex
    documents = []
    for index, (name, data) in enumerate(files.items(), 1):
        key = f"jobs/{job_id}/uploads/d{index:04d}"
        await blobs.put(key, data)
        digest = hashlib.sha256(data).hexdigest()
        doc_id = f"d{index:04d}"
        duplicate_of = (duplicates or {}).get(doc_id)
        documents.append(
            DocumentRef(
                doc_id=doc_id,
                filename=name,
                blob=key,
                size=len(data),
                sha256=digest,
                duplicate_of=duplicate_of,
                language=(languages or {}).get(name),
            )
        )
    await store.create_job(job_id, "o", JobOptions(dpi=100, language=language), documents)
    return JobSubmitted(job_id=job_id, owner="o", documents_total=len(documents))


FIRST_DELIVERY = Delivery(SimpleNamespace(attempts=1))


def tasks_of(ready: list[PagesReady]) -> list[PageTask]:
    return [task for message in ready for task in message.tasks]


@pytest.fixture
def splitters() -> Iterator[SplitProcesses]:
    settings = IngestSettings()
    with SplitProcesses(settings.max_in_flight, settings.process_limits()) as processes:
        yield processes


def ingest_deps(
    settings: IngestSettings, store: SeedStore, db: Database, publisher: NsqPublisher, splitters: SplitProcesses
) -> IngestDeps:
    return IngestDeps(settings, store, make_blob_store(BlobSettings(), db), publisher, splitters)


async def test_ingest_expands_archives_and_queues_one_task_per_page(
    store, db, publisher, nsq_settings, nsq_admin, splitters
):
    """A zip of a PNG, a 4-page PDF and a text file becomes two documents (1 + 4 pages) and one
    failed member with its cause; each page image is in the blob store; a redelivery queues no
    page again but repeats the same plans (in case the first ones were lost with nsqd)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(TEST_DATA / "typewriter.png", "scans/typewriter.png")
        bundle.write(TEST_DATA / "cardinal.pdf", "scans/cardinal.pdf")
        bundle.writestr("scans/notes.txt", "not a scan")
    job = await submit(
        store, db, {"batch.zip": archive.getvalue(), "invalid.pdf": (TEST_DATA / "invalid.pdf").read_bytes()}
    )
    deps = ingest_deps(IngestSettings(), store, db, publisher, splitters)
    async with (
        collecting(DOCUMENT_PLANNED, nsq_admin, publisher, nsq_settings, job.job_id) as plans,
        collecting(PAGES_READY, nsq_admin, publisher, nsq_settings, job.job_id) as ready,
    ):
        for again in (False, True):  # the second time handed out again: documents already split
            for doc_id in ("d0001", "d0002"):
                document = DocumentTask(job_id=job.job_id, doc_id=doc_id, again=again)
                await handle_document(document, FIRST_DELIVERY, deps=deps)
        await eventually(lambda: len(tasks_of(ready)) == 5 and len(plans) == 10, what="plans and page tasks")
        await asyncio.sleep(0.5)  # and nothing more within this time
    tasks = tasks_of(ready)
    by_doc = {plan.doc_id: plan for plan in plans}
    assert len(tasks) == 5
    assert len(by_doc) == 5
    assert sorted(plans, key=lambda p: p.doc_id)[::2] == sorted(plans, key=lambda p: p.doc_id)[1::2]
    assert [m.filename for m in by_doc["d0001"].members] == [
        "batch.zip/scans/cardinal.pdf",
        "batch.zip/scans/typewriter.png",
        "batch.zip/scans/notes.txt",
    ]
    member_pages = {plan.filename: plan.pages for plan in plans if plan.doc_id.startswith("d0001-") and not plan.error}
    assert member_pages == {"batch.zip/scans/cardinal.pdf": 4, "batch.zip/scans/typewriter.png": 1}
    skipped = [plan for plan in plans if plan.filename == "batch.zip/scans/notes.txt"]
    assert skipped[0].error is not None
    assert "not a supported document" in skipped[0].error
    assert by_doc["d0002"].error is not None
    assert "corrupt PDF" in by_doc["d0002"].error
    blobs = make_blob_store(BlobSettings(), db)
    for task in tasks:
        assert isinstance(task, PageTask)
        assert (await blobs.get(task.image)).startswith(b"\x89PNG")
        assert task.dpi == 100 or task.doc_id.endswith("-002")  # the PNG keeps its own dpi


async def test_a_document_that_names_its_languages_has_its_pages_read_in_them(
    store, db, publisher, nsq_settings, nsq_admin, splitters
):
    """A document's own languages (its upload's Content-Language) go on its pages' tasks, and on
    the pages of an archive's members; a document that names none takes the job's."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(TEST_DATA / "typewriter.png", "typewriter.png")
    png = (TEST_DATA / "typewriter.png").read_bytes()
    job = await submit(
        store,
        db,
        {"russian.png": png + b"\0", "greek.zip": archive.getvalue(), "english.png": png},
        languages={"russian.png": "rus", "greek.zip": "ell"},
        language="eng",
    )
    deps = ingest_deps(IngestSettings(), store, db, publisher, splitters)
    async with collecting(PAGES_READY, nsq_admin, publisher, nsq_settings, job.job_id) as ready:
        for doc_id in ("d0001", "d0002", "d0003"):
            await handle_document(DocumentTask(job_id=job.job_id, doc_id=doc_id), FIRST_DELIVERY, deps=deps)
        await eventually(lambda: len(tasks_of(ready)) == 3, what="a page task per document")
    languages = {task.doc_id.split("-")[0]: task.language for task in tasks_of(ready)}
    assert languages == {"d0001": "rus", "d0002": "ell", "d0003": "eng"}


async def test_aggregator_counts_exactly_and_announces_completion_once(
    store, db, publisher, nsq_settings, nsq_admin, jobs: Coordinator
):
    """Planned documents, a storm of duplicated results and a failure give exact job, document and
    node counts, status `partial`, and exactly one job.completed event."""
    job = await submit(store, db, {"a.pdf": b"%PDF", "b.pdf": b"%PDF", "c.pdf": b"x"})
    async with collecting(JOB_COMPLETED, nsq_admin, publisher, nsq_settings, job.job_id) as completions:
        await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0001", pages=3))
        await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0002", pages=1))
        await jobs.planned(DocumentPlanned(job_id=job.job_id, doc_id="d0003", error="unsupported document"))
        results = [
            page_done(page, node=node, job_id=job.job_id, doc_id="d0001")
            for page, node in [(1, "a"), (2, "a"), (3, "b")]
        ]
        storm = [jobs.outcome(result) for result in results * 5]
        storm.append(jobs.outcome(page_failed(1, node="b", job_id=job.job_id, doc_id="d0002")))
        await asyncio.gather(*storm)
        await jobs.flush()
        await jobs.flush()  # nothing moved: announced once
        await eventually(lambda: len(completions) == 1, what="job.completed")
        await asyncio.sleep(0.5)  # and no second announcement within this time
    assert completions == [JobCompleted(job_id=job.job_id, status="partial")]
    saved = await store.get_job(job.job_id)
    assert saved is not None
    assert (saved["status"], saved["pages_total"], saved["pages_done"], saved["pages_failed"]) == ("partial", 4, 3, 1)
    assert {node: (v["pages_done"], v["pages_failed"]) for node, v in saved["nodes"].items()} == {
        "a": (2, 0),
        "b": (1, 1),
    }
    statuses = {
        d["doc_id"]: (d["status"], d["pages_done"], d["pages_failed"]) for d in await store.get_documents(job.job_id)
    }
    assert statuses == {"d0001": ("completed", 3, 0), "d0002": ("failed", 0, 1), "d0003": ("failed", 0, 0)}
    summaries = {d["doc_id"]: d.get("pages_error") for d in await store.get_documents(job.job_id)}
    assert summaries == {"d0001": None, "d0002": "1 page failed; page 1: boom", "d0003": None}
    assert ({s: n for s, n in saved["documents_by_status"].items() if n}, saved["documents_failed"]) == (
        {"completed": 1, "failed": 2},
        ["d0002", "d0003"],
    )
    assert await store.pages.count_documents({"job_id": job.job_id, "status": "done"}) == 3


async def test_identical_files_in_a_job_are_read_once(store, db, publisher, nsq_settings, nsq_admin, splitters):
    """A file the gateway found identical to an earlier one is not read: it is announced as its duplicate."""
    scan = (TEST_DATA / "typewriter.png").read_bytes()
    job = await submit(store, db, {"a.png": scan, "copy-of-a.png": scan}, duplicates={"d0002": "d0001"})
    deps = ingest_deps(IngestSettings(), store, db, publisher, splitters)
    async with (
        collecting(DOCUMENT_PLANNED, nsq_admin, publisher, nsq_settings, job.job_id) as plans,
        collecting(PAGES_READY, nsq_admin, publisher, nsq_settings, job.job_id) as ready,
    ):
        for doc_id in ("d0001", "d0002"):
            await handle_document(DocumentTask(job_id=job.job_id, doc_id=doc_id), FIRST_DELIVERY, deps=deps)
        await eventually(lambda: len(plans) == 2 and len(tasks_of(ready)) == 1, what="two plans and one page task")
        await asyncio.sleep(0.3)  # and no page task for the duplicate within this time
    tasks = tasks_of(ready)
    by_doc = {plan.doc_id: plan for plan in plans}
    assert by_doc["d0001"].pages == 1
    assert by_doc["d0002"].duplicate_of == "d0001"
    assert by_doc["d0002"].pages == 0
    assert [task.doc_id for task in tasks] == ["d0001"]


async def test_a_split_cut_short_resumes_after_the_last_batch_it_queued(
    store, db, publisher, nsq_settings, nsq_admin, splitters
):
    """A document redelivered after its split was cut short (ingest killed, or nsqd's message
    timeout) announces the same plan and renders only the pages after its last checkpoint."""
    job = await submit(store, db, {"cardinal.pdf": (TEST_DATA / "cardinal.pdf").read_bytes()})
    settings = IngestSettings(publish_batch=2)
    deps = ingest_deps(settings, store, db, publisher, splitters)
    plan = DocumentPlanned(job_id=job.job_id, doc_id="d0001", filename="cardinal.pdf", pages=4)
    await store.record_ingest(job.job_id, "d0001", plans=[plan.model_dump(mode="json")])
    await store.record_ingest(job.job_id, "d0001", rendered=2)
    async with (
        collecting(DOCUMENT_PLANNED, nsq_admin, publisher, nsq_settings, job.job_id) as plans,
        collecting(PAGES_READY, nsq_admin, publisher, nsq_settings, job.job_id) as ready,
    ):
        redelivered = Delivery(SimpleNamespace(attempts=2))
        await handle_document(DocumentTask(job_id=job.job_id, doc_id="d0001"), redelivered, deps=deps)
        await eventually(lambda: len(tasks_of(ready)) == 2 and len(plans) == 1, what="the rest of the pages")
    assert plans == [plan]
    assert [task.page for task in tasks_of(ready)] == [3, 4]
    record = await store.ingest_record(job.job_id, "d0001", batch=2)
    assert record["done"]


async def test_an_archive_of_thousands_of_long_named_members_is_announced_in_parts_that_fit(
    store, db, publisher, nsq_settings, nsq_admin, splitters
):
    """4,000 members with 256-character paths name over 1 MiB in all, more than one message
    may carry: the archive's plan comes in parts that together name every member once, each
    name cut to ingest's limit keeping its start and its end, and every member is announced."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for n in range(4_000):
            bundle.writestr(f"{'box/' * 60}{n:05d}-notes.txt", "not a scan")
    job = await submit(store, db, {"big.zip": archive.getvalue()})
    deps = ingest_deps(IngestSettings(), store, db, publisher, splitters)
    async with collecting(DOCUMENT_PLANNED, nsq_admin, publisher, nsq_settings, job.job_id) as plans:
        await handle_document(DocumentTask(job_id=job.job_id, doc_id="d0001"), FIRST_DELIVERY, deps=deps)
        await eventually(lambda: len(plans) > 4_001, timeout_s=60, what="the archive's parts and its members")
    parts = [plan for plan in plans if plan.doc_id == "d0001"]
    listed = [member for part in parts for member in part.members]
    assert len(parts) > 1
    assert len(listed) == len({member.doc_id for member in listed}) == 4_000
    assert len({plan.doc_id for plan in plans} - {"d0001"}) == 4_000
    for member in listed:
        assert len(member.filename) == 255
        assert member.filename.startswith("big.zip/box/box/")
        assert member.filename.endswith("-notes.txt")
        assert "…" in member.filename
