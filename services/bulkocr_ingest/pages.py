"""A document's pages: rendered one at a time in a split process, stored, recorded in the page
manifest and announced in batches; a page that cannot be produced is announced failed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from pathlib import Path

import structlog

from bulkocr.contracts import (
    PAGE_FAILED,
    PAGES_READY,
    PageFailed,
    PagesReady,
    PageTask,
)
from bulkocr_ingest.deps import Deps, JobInfo
from bulkocr_ingest.metrics import PAGES_RENDERED, PAGES_UNREADABLE
from bulkocr_ingest.split import (
    DocumentError,
    PageFailure,
    PageImage,
)

log = structlog.get_logger(__name__)

INGEST_NODE = "ingest"


def page_image_key(job_id: str, doc_id: str, page: int) -> str:
    return f"jobs/{job_id}/pages/{doc_id}/{page:05d}.png"


async def job_cancelled(job_id: str, deps: Deps) -> bool:
    job = await deps.store.get_job(job_id)
    return job is not None and job.get("status") == "cancelled"


async def split_and_queue(
    job: JobInfo,
    doc_id: str,
    filename: str,
    path: Path,
    pages: int,
    *,
    deps: Deps,
    first: int = 1,
    checkpoint: bool = True,
) -> None:
    """Render pages `first`..`pages`, store them and announce them in batches; after each
    batch, note how far it got so a redelivery resumes there."""
    batch: list[PageTask] = []
    last, last_error = first - 1, "the document ended before this page"

    async def queue() -> bool:
        """Queue the batch; False once the job is cancelled."""
        await queue_pages(job, doc_id, batch, deps)
        if checkpoint and batch[-1].page % deps.settings.publish_batch == 0:
            await deps.store.record_ingest(job.job_id, doc_id, rendered=batch[-1].page)
        batch.clear()
        return not await job_cancelled(job.job_id, deps)

    # aclosing: leaving early gives the split process back now, not when the generator is collected.
    async with contextlib.aclosing(rendered_pages(path, filename, job.options.dpi, deps, first=first)) as rendered:
        async for page in rendered:
            last = page.number
            if isinstance(page, PageFailure):
                last_error = str(page.error)
                await fail_page(job, doc_id, page.number, last_error, deps=deps)
                continue
            batch.append(await stored_page(job, doc_id, page, deps))
            if len(batch) >= deps.settings.publish_batch and not await queue():
                return
    if batch:
        await queue()
    # A document that broke part way yields no more pages: every page counted but not
    # produced fails, so the document still finishes.
    for number in range(last + 1, pages + 1):
        await fail_page(job, doc_id, number, f"not rendered: {last_error}", deps=deps)


async def stored_page(job: JobInfo, doc_id: str, page: PageImage, deps: Deps) -> PageTask:
    """Put the page image in the blob store; the OCR task that reads it."""
    key = page_image_key(job.job_id, doc_id, page.number)
    await deps.blobs.put(key, page.png)
    PAGES_RENDERED.inc()
    return PageTask(
        job_id=job.job_id,
        doc_id=doc_id,
        page=page.number,
        image=key,
        dpi=page.dpi,
        engine=job.options.engine,
        language=job.options.language,
    )


async def queue_pages(job: JobInfo, doc_id: str, tasks: list[PageTask], deps: Deps) -> None:
    """Record the tasks in the page manifest (for replays and restarts), then tell the
    aggregator, which hands them to OCR within the job's window."""
    await deps.store.add_page_tasks([task.model_dump(mode="json") for task in tasks])
    await deps.publisher.publish(PAGES_READY, PagesReady(job_id=job.job_id, doc_id=doc_id, tasks=tuple(tasks)))


async def rendered_pages(
    path: Path, filename: str, dpi: int, deps: Deps, *, first: int = 1
) -> AsyncGenerator[PageImage | PageFailure, None]:
    """Pages rendered one at a time in a split process, which this document holds meanwhile."""
    number = first - 1
    async with deps.splitters.lease() as splitter:
        try:
            await splitter.open(path, dpi=dpi, name=filename, limits=deps.settings.limits(), first=first)
            while pages := await splitter.next_pages(number + 1):
                for page in pages:
                    number = page.number
                    yield page
        except DocumentError as error:
            # The document broke part way (or went over the split process's limits): the
            # next page fails with the cause.
            yield PageFailure(number=number + 1, error=error)


async def fail_page(job: JobInfo, doc_id: str, page: int, error: str, *, deps: Deps) -> None:
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
    PAGES_UNREADABLE.inc()
    log.warning("page_unreadable", page=page, error=error)
