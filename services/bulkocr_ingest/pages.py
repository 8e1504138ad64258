"""A document's pages: rendered in batches in a split process, stored, recorded in the page
manifest and announced in batches, each stage overlapping the next batch's rendering; a page
that cannot be produced is announced failed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
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
    Page,
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
    announcements = Announcements(job, doc_id, deps, checkpoint=checkpoint)
    try:
        # aclosing: leaving early gives the split process back now, not when the generator is collected.
        async with contextlib.aclosing(
            rendered_batches(path, filename, job.options.dpi, deps, first=first)
        ) as rendered:
            async for made in rendered:
                images = [page for page in made if isinstance(page, PageImage)]
                tasks = {task.page: task for task in await stored_pages(job, doc_id, images, deps)}
                for page in made:
                    last = page.number
                    if isinstance(page, PageFailure):
                        last_error = str(page.error)
                        await fail_page(job, doc_id, page.number, last_error, deps=deps)
                        continue
                    batch.append(tasks[page.number])
                    if len(batch) >= deps.settings.publish_batch:
                        going_on = await announcements.send(batch)
                        batch = []
                        if not going_on:
                            return
        if batch:
            await announcements.send(batch)
    finally:
        await announcements.finish()
    # A document that broke part way yields no more pages: every page counted but not
    # produced fails, so the document still finishes.
    for number in range(last + 1, pages + 1):
        await fail_page(job, doc_id, number, f"not rendered: {last_error}", deps=deps)


@dataclass
class Announcements:
    """A document's batches of tasks announced one at a time and in order, each while the
    next pages are rendered and stored (an announcement is four round trips: the manifest,
    the message, the checkpoint and the cancel check)."""

    job: JobInfo
    doc_id: str
    deps: Deps
    checkpoint: bool
    _running: asyncio.Task[bool] | None = None

    async def send(self, tasks: list[PageTask]) -> bool:
        """Announce `tasks` once the batch before them is; False once the job is cancelled
        (and then nothing more is announced)."""
        going_on = self._running is None or await self._running
        self._running = asyncio.create_task(self._announce(tasks)) if going_on else None
        return going_on

    async def finish(self) -> None:
        """Wait for the last announcement, also when the document is left on an error: what
        was rendered and stored is announced (bounded by the publish and database timeouts)."""
        running, self._running = self._running, None
        if running is not None:
            await asyncio.wait([running])
            if not running.cancelled() and (error := running.exception()) is not None:
                raise error

    async def _announce(self, tasks: list[PageTask]) -> bool:
        await queue_pages(self.job, self.doc_id, tasks, self.deps)
        if self.checkpoint and tasks[-1].page % self.deps.settings.publish_batch == 0:
            await self.deps.store.record_ingest(self.job.job_id, self.doc_id, rendered=tasks[-1].page)
        return not await job_cancelled(self.job.job_id, self.deps)


async def stored_pages(job: JobInfo, doc_id: str, images: list[PageImage], deps: Deps) -> list[PageTask]:
    """Put the page images in the blob store (one batch, one call); the OCR tasks that read them."""
    keys = [page_image_key(job.job_id, doc_id, page.number) for page in images]
    if images:
        await deps.blobs.put_many([(key, page.png) for key, page in zip(keys, images, strict=True)])
    PAGES_RENDERED.inc(len(images))
    return [
        PageTask(
            job_id=job.job_id,
            doc_id=doc_id,
            page=page.number,
            image=key,
            dpi=page.dpi,
            engine=job.options.engine,
            language=job.options.language,
        )
        for key, page in zip(keys, images, strict=True)
    ]


async def queue_pages(job: JobInfo, doc_id: str, tasks: list[PageTask], deps: Deps) -> None:
    """Record the tasks in the page manifest (for replays and restarts), then tell the
    aggregator, which hands them to OCR within the job's window."""
    await deps.store.add_page_tasks([task.model_dump(mode="json") for task in tasks])
    await deps.publisher.publish(PAGES_READY, PagesReady(job_id=job.job_id, doc_id=doc_id, tasks=tuple(tasks)))


async def rendered_batches(
    path: Path, filename: str, dpi: int, deps: Deps, *, first: int = 1
) -> AsyncGenerator[list[Page], None]:
    """Pages rendered in batches in a split process, which this document holds meanwhile;
    the next batch is rendered while the caller stores this one."""
    number = first - 1
    async with deps.splitters.lease() as splitter:
        coming: asyncio.Future[tuple[list[Page], bool]] | None = None
        try:
            await splitter.open(path, dpi=dpi, name=filename, limits=deps.settings.limits(), first=first)
            ended = False
            while not ended:
                pages, ended = await (coming or splitter.next_pages(number + 1))
                coming = None
                if not pages:
                    break
                number = pages[-1].number
                if not ended:
                    coming = asyncio.ensure_future(splitter.next_pages(number + 1))
                yield pages
        except DocumentError as error:
            # The document broke part way (or went over the split process's limits): the
            # next page fails with the cause.
            yield [PageFailure(number=number + 1, error=error)]
        finally:
            if coming is not None:
                # Left early: the batch being made is not wanted, and the split process must
                # be settled (stopped, its answer unread) before another document leases it.
                coming.cancel()
                await asyncio.wait([coming])
                if not coming.cancelled():
                    coming.exception()  # seen here, so asyncio does not report it as lost


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
