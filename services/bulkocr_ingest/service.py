"""Ingest: split each document handed to it into page images, one message per document.

For a document: fetch the upload from the blob store into a temporary file, count its
pages and announce them (`job.planned`, so progress is honest from the start), then render
its pages in small batches (memory stays flat for a 1,000-page PDF), store the page images
in the blob store, record the page tasks and announce them in batches (`pages.ready`; the
aggregator queues them for OCR), each step overlapping the next batch's rendering. Several
documents are split at once, by one process or by several replicas; the parsing itself runs
in split processes held to memory and time limits (`split_process.py`), so a hostile file
fails its document, never ingest. A document that cannot be read is announced with its
cause while the job's other documents go on; so is a one-page document whose page cannot be
produced (it is announced after that page is rendered). ZIP archives are expanded into
documents of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from bulkocr.blobs import BlobStore, make_blob_store
from bulkocr.contracts import (
    DOCUMENT,
    DOCUMENT_PLANNED,
    INGEST_CHANNEL,
    ArchiveMember,
    DocumentPlanned,
    DocumentTask,
    JobOptions,
)
from bulkocr.mongo import Document, IngestJobStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr.wire import read_stored
from bulkocr_ingest.deps import Deps, JobInfo
from bulkocr_ingest.pages import queue_pages, rendered_batches, split_and_queue, stored_pages
from bulkocr_ingest.settings import IngestSettings
from bulkocr_ingest.split import (
    DocumentError,
    DocumentType,
    PageFailure,
    PageImage,
    detect_type,
    expand_zip,
)
from bulkocr_ingest.split_process import SplitProcesses

log = structlog.get_logger(__name__)


async def handle_document(task: DocumentTask, delivery: Delivery, *, deps: Deps) -> None:
    """Split one document of a job into pages.

    A redelivered document that was split already announces its plans again (the first
    announcement may have been lost with nsqd); one whose split was cut short resumes after
    the last page it queued. A file the gateway found identical to an earlier one of the job
    is announced as its duplicate, not read twice.
    """
    found = await _job_and_document(task, deps)
    if found is None:
        return
    job, document = found
    plans = Plans(job, deps)
    record: Document = {"plans": [], "rendered": 0, "done": False}
    if task.again or delivery.attempts > 1:
        # Handed out before: it may be split already, or part way (a first hand-out needs no look).
        record = await deps.store.ingest_record(task.job_id, task.doc_id, batch=deps.settings.publish_batch)
    if record["done"]:
        await plans.repeat(record["plans"])
        return
    if document.get("duplicate_of"):
        await plans.announce(task.doc_id, document["filename"], duplicate_of=document["duplicate_of"])
    else:
        resume = Resume.of(record)
        if resume is not None:
            await plans.repeat(resume.plans)
        with tempfile.TemporaryDirectory(prefix="bulkocr-ingest-", dir=deps.settings.work_dir) as work:
            path = Path(work) / task.doc_id
            await _download(deps.blobs, document["blob"], path)
            if resume is not None:
                await split_and_queue(
                    job, task.doc_id, document["filename"], path, resume.pages, deps=deps, first=resume.first
                )
            else:
                await ingest_file(plans, task.doc_id, document["filename"], path)
    await deps.store.record_ingest(task.job_id, task.doc_id, plans=plans.announced or record["plans"], done=True)
    log.info("document_split", plans=len(plans.announced or record["plans"]))


@dataclass(frozen=True)
class Resume:
    """Where a document's split that was cut short goes on: its plan, and the next page."""

    plans: list[dict[str, object]]
    pages: int
    first: int

    @classmethod
    def of(cls, record: Document) -> Resume | None:
        """Only a plain document (one plan, with pages) resumes; an archive is split again."""
        plans = record["plans"]
        if len(plans) != 1 or not plans[0].get("pages"):
            return None
        return cls(plans, int(plans[0]["pages"]), int(record["rendered"]) + 1)


async def _job_and_document(task: DocumentTask, deps: Deps) -> tuple[JobInfo, Document] | None:
    """The job and the document record a task names, or None when there is nothing to do."""
    job = await deps.store.get_job(task.job_id)
    if job is None:
        log.info("document_dropped", reason="no such job")
        return None
    if job.get("status") == "cancelled":
        log.info("document_dropped", reason="job cancelled")
        return None
    info = JobInfo(task.job_id, read_stored(JobOptions, job["options"]))
    document = await deps.store.uploaded_document(task.job_id, task.doc_id)
    if document is None or not document.get("blob"):
        # Announced as failed so the job still finishes, with the reason.
        await Plans(info, deps).announce(task.doc_id, task.doc_id, error="the job has no such uploaded document")
        return None
    if document.get("language"):
        # The document's own languages win over the job's, for it and the members of an archive.
        info = JobInfo(task.job_id, info.options.model_copy(update={"language": document["language"]}))
    return info, document


@dataclass
class Plans:
    """Announces documents' plans for one uploaded file, remembering them for redeliveries."""

    job: JobInfo
    deps: Deps
    announced: list[dict[str, object]] = field(default_factory=list)

    async def announce(self, doc_id: str, filename: str, **plan: object) -> None:
        planned = DocumentPlanned(job_id=self.job.job_id, doc_id=doc_id, filename=filename, **plan)  # type: ignore[arg-type]
        await self.deps.publisher.publish(DOCUMENT_PLANNED, planned)
        self.announced.append(planned.model_dump(mode="json"))

    async def repeat(self, plans: list[dict[str, object]]) -> None:
        for plan in plans:
            await self.deps.publisher.publish(DOCUMENT_PLANNED, DocumentPlanned.model_validate(plan))


async def give_up_document(task: DocumentTask, cause: str, attempts: int, *, deps: Deps) -> None:
    """The document could not be split after every attempt: fail it with the cause, so the
    job finishes instead of waiting forever."""
    job = await deps.store.get_job(task.job_id)
    if job is None:
        return
    document = await deps.store.uploaded_document(task.job_id, task.doc_id) or {}
    plans = Plans(JobInfo(task.job_id, read_stored(JobOptions, job["options"])), deps)
    filename = str(document.get("filename") or task.doc_id)
    await plans.announce(task.doc_id, filename, error=f"could not be split: {cause}")
    await deps.store.record_ingest(task.job_id, task.doc_id, plans=plans.announced, done=True)


async def ingest_file(plans: Plans, doc_id: str, filename: str, path: Path) -> None:
    """Announce and split one file: a document, or an archive of documents."""
    limits = plans.deps.settings.limits()
    try:
        kind = await asyncio.to_thread(detect_type, path, name=filename)
        if kind is DocumentType.ZIP:
            await _ingest_archive(plans, doc_id, filename, path)
            return
        async with plans.deps.splitters.lease() as splitter:
            pages = await splitter.count_pages(path, name=filename, limits=limits)
    except DocumentError as error:
        await plans.announce(doc_id, filename, error=str(error))
        log.warning("document_unreadable", error=str(error))
        return
    if pages == 1:
        await _ingest_one_page(plans, doc_id, filename, path)
        return
    await plans.announce(doc_id, filename, pages=pages)
    resumable = len(plans.announced) == 1  # a plain document, not an archive's member
    if resumable:
        await plans.deps.store.record_ingest(plans.job.job_id, doc_id, plans=plans.announced)
    await split_and_queue(plans.job, doc_id, filename, path, pages, deps=plans.deps, checkpoint=resumable)


async def _ingest_one_page(plans: Plans, doc_id: str, filename: str, path: Path) -> None:
    """A one-page document is announced once its page is rendered. If that page cannot be
    produced (a truncated image, a page over the pixel limit even at the lowest dpi), the
    document is unreadable and is announced with the cause like any other, so the job's status
    says why it failed rather than showing a failed document with no error."""
    job, deps = plans.job, plans.deps
    first: PageImage | PageFailure | None = None
    async with contextlib.aclosing(rendered_batches(path, filename, job.options.dpi, deps)) as rendered:
        async for pages in rendered:
            if first is None:
                first = pages[0]
    if not isinstance(first, PageImage):
        cause = str(first.error) if first is not None else "corrupt document: its only page cannot be found"
        await plans.announce(doc_id, filename, error=cause)
        log.warning("document_unreadable", error=cause)
        return
    await plans.announce(doc_id, filename, pages=1)
    await queue_pages(job, doc_id, await stored_pages(job, doc_id, [first], deps), deps)


async def _ingest_archive(plans: Plans, doc_id: str, filename: str, path: Path) -> None:
    out = path.with_name(f"{path.name}.members")
    out.mkdir(exist_ok=True)
    archive = await asyncio.to_thread(expand_zip, path, out, limits=plans.deps.settings.limits())
    limit = plans.deps.settings.max_filename_chars
    members = [
        (f"{doc_id}-{index:03d}", shortened(f"{filename}/{m.name}", limit), m)
        for index, m in enumerate(archive.documents, 1)
    ]
    skipped = [
        (f"{doc_id}-s{index:03d}", shortened(f"{filename}/{s.name}", limit), s.reason)
        for index, s in enumerate(archive.skipped, 1)
    ]
    listed = [ArchiveMember(doc_id=i, filename=n) for i, n, *_ in [*members, *skipped]]
    for part in _message_sized(listed):
        await plans.announce(doc_id, filename, members=part)
    for member_id, name, reason in skipped:
        await plans.announce(member_id, name, error=f"not a supported document: {reason}")
    for member_id, name, member in members:
        with structlog.contextvars.bound_contextvars(doc_id=member_id):
            await ingest_file(plans, member_id, name, member.path)
        member.path.unlink(missing_ok=True)


def shortened(name: str, limit: int) -> str:
    """The name cut to `limit` characters in the middle, keeping its start (the archive) and
    its end (the file's own name)."""
    if len(name) <= limit:
        return name
    head = limit // 3
    return f"{name[:head]}…{name[len(name) - (limit - head - 1) :]}"


# Well under nsqd's 1 MiB message limit, whatever else the plan carries.
_PLAN_MEMBERS_BYTES = 256 * 1024


def _message_sized(members: list[ArchiveMember]) -> list[tuple[ArchiveMember, ...]]:
    """An archive's members in parts small enough for one plan message each (at least one part)."""
    parts: list[list[ArchiveMember]] = [[]]
    size = 0
    for member in members:
        member_size = len(member.doc_id) + len(member.filename.encode()) + 64
        if parts[-1] and size + member_size > _PLAN_MEMBERS_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(member)
        size += member_size
    return [tuple(part) for part in parts]


async def _download(blobs: BlobStore, key: str, path: Path) -> None:
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        async for chunk in blobs.stream(key):
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)


async def run(settings: IngestSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    with SplitProcesses(settings.max_in_flight, settings.process_limits()) as splitters:
        async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
            store = IngestJobStore(db)
            await store.ensure_indexes()
            await splitters.start()  # a warm pool: the first job pays no process start
            deps = Deps(settings, store, make_blob_store(blob, db), publisher, splitters)
            documents = Subscription(
                DOCUMENT,
                INGEST_CHANNEL,
                functools.partial(handle_document, deps=deps),
                max_in_flight=settings.max_in_flight,
                on_give_up=functools.partial(give_up_document, deps=deps),
            )
            await serve(nsq=nsq, publisher=publisher, subscriptions=[documents])


def main() -> None:
    run_service("ingest", run, IngestSettings, NsqSettings, MongoSettings, BlobSettings)
