"""Ingest: split each submitted document into page images and queue one OCR task per page.

For every document of a job: fetch the upload from the blob store into a temporary file,
count its pages and announce them (`job.planned`, so progress is honest from the start),
then render one page at a time (memory stays flat for a 1,000-page PDF), store each page
image in the blob store and publish the page tasks in batches. A document that cannot be
read is announced with its cause while the job's other documents go on. ZIP archives are
expanded into documents of their own.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.blobs import BlobStore, make_blob_store
from bulkocr.contracts import (
    DOCUMENT_PLANNED,
    JOB_SUBMITTED,
    PAGE,
    PAGE_FAILED,
    ArchiveMember,
    DocumentPlanned,
    JobSubmitted,
    PageFailed,
    PageTask,
)
from bulkocr.log import configure_logging
from bulkocr.mongo import JobStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher, consuming
from bulkocr.runtime import shutdown_event
from bulkocr.settings import BlobSettings, LogSettings, MongoSettings, NsqSettings, load
from bulkocr_ingest.split import (
    DocumentError,
    DocumentType,
    PageFailure,
    PageImage,
    SplitLimits,
    count_pages,
    detect_type,
    expand_zip,
    iter_pages,
)

log = structlog.get_logger(__name__)

CHANNEL = "ingest"
INGEST_NODE = "ingest"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_INGEST_", extra="ignore")

    max_pages: int = Field(default=5_000, gt=0)
    max_page_pixels: int = Field(default=80_000_000, gt=0)
    zip_max_total_bytes: int = Field(default=4 << 30, gt=0)
    zip_max_members: int = Field(default=10_000, gt=0)
    publish_batch: int = Field(default=50, gt=0)
    max_in_flight: int = Field(default=1, gt=0)
    work_dir: Path | None = None

    def limits(self) -> SplitLimits:
        return SplitLimits(
            max_pages=self.max_pages,
            max_page_pixels=self.max_page_pixels,
            zip_max_total_bytes=self.zip_max_total_bytes,
            zip_max_members=self.zip_max_members,
        )


@dataclass(frozen=True)
class Deps:
    settings: IngestSettings
    store: JobStore
    blobs: BlobStore
    publisher: NsqPublisher


def page_image_key(job_id: str, doc_id: str, page: int) -> str:
    return f"jobs/{job_id}/pages/{doc_id}/{page:05d}.png"


async def handle_job(job: JobSubmitted, delivery: Delivery, *, deps: Deps) -> None:
    """Split every document of the job. Documents already split (a redelivery) are skipped."""
    with tempfile.TemporaryDirectory(prefix="bulkocr-ingest-", dir=deps.settings.work_dir) as work:
        for document in job.documents:
            if await deps.store.is_ingested(job.job_id, document.doc_id):
                continue
            path = Path(work) / document.doc_id
            await _download(deps.blobs, document.blob, path)
            with structlog.contextvars.bound_contextvars(doc_id=document.doc_id):
                await ingest_file(job, document.doc_id, document.filename, path, deps=deps)
            path.unlink(missing_ok=True)
            await deps.store.mark_ingested(job.job_id, document.doc_id)


async def give_up_job(job: JobSubmitted, cause: str, attempts: int, *, deps: Deps) -> None:
    """The job could not be split after every attempt: fail its unsplit documents with the cause,
    so the job finishes instead of waiting forever."""
    for document in job.documents:
        if not await deps.store.is_ingested(job.job_id, document.doc_id):
            await _announce(job, document.doc_id, document.filename, error=f"could not be split: {cause}", deps=deps)


async def ingest_file(job: JobSubmitted, doc_id: str, filename: str, path: Path, *, deps: Deps) -> None:
    """Announce and split one file: a document, or an archive of documents."""
    try:
        kind = await asyncio.to_thread(detect_type, path, name=filename)
        if kind is DocumentType.ZIP:
            await _ingest_archive(job, doc_id, filename, path, deps=deps)
            return
        pages = await asyncio.to_thread(count_pages, path, name=filename, limits=deps.settings.limits())
    except DocumentError as error:
        await _announce(job, doc_id, filename, error=str(error), deps=deps)
        log.warning("document_unreadable", error=str(error))
        return
    await _announce(job, doc_id, filename, pages=pages, deps=deps)
    await _split_and_queue(job, doc_id, filename, path, pages, deps=deps)


async def _ingest_archive(job: JobSubmitted, doc_id: str, filename: str, path: Path, *, deps: Deps) -> None:
    out = path.with_name(f"{path.name}.members")
    out.mkdir(exist_ok=True)
    archive = await asyncio.to_thread(expand_zip, path, out, limits=deps.settings.limits())
    members = [(f"{doc_id}-{index:03d}", f"{filename}/{m.name}", m) for index, m in enumerate(archive.documents, 1)]
    skipped = [
        (f"{doc_id}-s{index:03d}", f"{filename}/{s.name}", s.reason) for index, s in enumerate(archive.skipped, 1)
    ]
    listed = tuple(ArchiveMember(doc_id=i, filename=n) for i, n, *_ in [*members, *skipped])
    await deps.publisher.publish(
        DOCUMENT_PLANNED, DocumentPlanned(job_id=job.job_id, doc_id=doc_id, filename=filename, members=listed)
    )
    for member_id, name, reason in skipped:
        await _announce(job, member_id, name, error=f"not a supported document: {reason}", deps=deps)
    for member_id, name, member in members:
        with structlog.contextvars.bound_contextvars(doc_id=member_id):
            await ingest_file(job, member_id, name, member.path, deps=deps)
        member.path.unlink(missing_ok=True)


async def _announce(
    job: JobSubmitted, doc_id: str, filename: str, *, deps: Deps, pages: int = 0, error: str | None = None
) -> None:
    planned = DocumentPlanned(job_id=job.job_id, doc_id=doc_id, filename=filename, pages=pages, error=error)
    await deps.publisher.publish(DOCUMENT_PLANNED, planned)


async def _split_and_queue(
    job: JobSubmitted, doc_id: str, filename: str, path: Path, pages: int, *, deps: Deps
) -> None:
    batch: list[PageTask] = []
    last, last_error = 0, "the document ended before this page"
    async for page in _rendered_pages(path, filename, job.options.dpi, deps.settings.limits()):
        last = page.number
        if isinstance(page, PageFailure):
            last_error = str(page.error)
            await _fail_page(job, doc_id, page.number, last_error, deps=deps)
            continue
        key = page_image_key(job.job_id, doc_id, page.number)
        await deps.blobs.put(key, page.png)
        batch.append(
            PageTask(
                job_id=job.job_id,
                doc_id=doc_id,
                page=page.number,
                image=key,
                dpi=page.dpi,
                engine=job.options.engine,
                language=job.options.language,
            )
        )
        if len(batch) >= deps.settings.publish_batch:
            await deps.publisher.publish_many(PAGE, batch)
            batch = []
    if batch:
        await deps.publisher.publish_many(PAGE, batch)
    # A document that broke part way yields no more pages: every page counted but not
    # produced fails, so the document still finishes.
    for number in range(last + 1, pages + 1):
        await _fail_page(job, doc_id, number, f"not rendered: {last_error}", deps=deps)


async def _rendered_pages(
    path: Path, filename: str, dpi: int, limits: SplitLimits
) -> AsyncIterator[PageImage | PageFailure]:
    """Pages rendered one at a time in a thread, so the event loop keeps serving NSQ."""
    pages = iter_pages(path, dpi=dpi, name=filename, limits=limits)
    number = 0
    try:
        while True:
            try:
                page = await asyncio.to_thread(next, pages, None)
            except DocumentError as error:
                # The document broke part way: the next page fails with the cause.
                yield PageFailure(number=number + 1, error=error)
                return
            if page is None:
                return
            number = page.number
            yield page
    finally:
        # Closing waits for the PDFium lock another render may hold: not on the loop.
        await asyncio.to_thread(pages.close)


async def _fail_page(job: JobSubmitted, doc_id: str, page: int, error: str, *, deps: Deps) -> None:
    failed = PageFailed(
        job_id=job.job_id,
        doc_id=doc_id,
        page=page,
        node_id=INGEST_NODE,
        worker_id=INGEST_NODE,
        attempts=1,
        error=error,
    )
    await deps.publisher.publish(PAGE_FAILED, failed)
    log.warning("page_unreadable", page=page, error=error)


async def _download(blobs: BlobStore, key: str, path: Path) -> None:
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        async for chunk in blobs.stream(key):
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)


async def run(settings: IngestSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    stop = shutdown_event()
    async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
        store = JobStore(db)
        await store.ensure_indexes()
        deps = Deps(settings, store, make_blob_store(blob, db), publisher)

        async def handler(job: JobSubmitted, delivery: Delivery) -> None:
            await handle_job(job, delivery, deps=deps)

        async def on_give_up(job: JobSubmitted, cause: str, attempts: int) -> None:
            await give_up_job(job, cause, attempts, deps=deps)

        async with consuming(
            JOB_SUBMITTED,
            CHANNEL,
            handler,
            publisher=publisher,
            settings=nsq,
            max_in_flight=settings.max_in_flight,
            on_give_up=on_give_up,
        ):
            log.info("service_started")
            await stop.wait()


def main() -> None:
    configure_logging(load(LogSettings), service="ingest")
    asyncio.run(run(load(IngestSettings), load(NsqSettings), load(MongoSettings), load(BlobSettings)))
