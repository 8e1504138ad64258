"""OCR worker: read the pages of each batch with the job's engine, report the results.

A batch is one page, unless the job's pages are quick (then the aggregator puts several in
one message, which a message per page would cost more than). The pool has
`BULKOCR_OCR_PROCESSES` processes; the consumer takes that many messages at a time, plus
`BULKOCR_OCR_PREFETCH` (so the next page is at hand as one is reported), and as many pages
are read at once. Long pages are TOUCHed by the NSQ adapter. A page that cannot be read is
tried again with its batch (pages read meanwhile are reported, and count once); after the
last attempt it is reported failed with its cause (and the message is kept on the
dead-letter topic).
Every few seconds the worker sends a heartbeat with its node id (the Swarm node's hostname
unless `BULKOCR_NODE_ID` says otherwise) and worker id.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.blobs import BlobStore, make_blob_store
from bulkocr.contracts import (
    NODE_HEARTBEAT,
    OCR_CHANNEL,
    PAGE_BATCH,
    PAGE_FAILED,
    PAGE_RETRYING,
    PAGES_DONE,
    NodeHeartbeat,
    PageBatch,
    PageDone,
    PageFailed,
    PageRetrying,
    PagesDone,
    PageTask,
    PageTimings,
)
from bulkocr.errors import BlobNotFound, PermanentError, Unfinished
from bulkocr.mongo import JobStore, connect_mongo, document_key
from bulkocr.nsq import Delivery, NsqPublisher, local_nsqd
from bulkocr.page_model import PageQuality, PageText
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_ocr_worker.engines import EngineUnavailableError
from bulkocr_ocr_worker.engines.runtimes import RuntimeName
from bulkocr_ocr_worker.metrics import OCR_SECONDS, PAGES
from bulkocr_ocr_worker.pool import EngineSettings, OcrPool, PageUnreadable
from bulkocr_ocr_worker.tiling import TilingSettings

log = structlog.get_logger(__name__)

CANCEL_CHECK_S = 1.0
# A report of pages read stays well inside nsqd's 1 MiB message limit: each page adds its
# inline result (at most `inline_result_max_bytes`, larger ones travel by blob reference)
# and at most REPORT_PAGE_BYTES of ids, timings and quality.
REPORT_BYTES = 640 * 1024
REPORT_PAGE_BYTES = 2048
CAUSES_CHARS = 4000
# The page's own fault (its image cannot be decoded, its job names an engine this worker
# lacks): trying again cannot help, so the page fails at once. Anything else (a dead or hung
# OCR process, a bug) is tried again up to BULKOCR_PAGE_ATTEMPTS times.
PAGE_FAULTS = (PageUnreadable, EngineUnavailableError)


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_", extra="ignore")

    engine: str = Field(default="rapidocr", description="engine loaded at start; jobs may name another")
    ocr_processes: int = Field(default=1, gt=0)
    # Pages held beyond those being read, so the next one is fetched while the last is
    # reported (0: a worker takes a page only when a process is free).
    ocr_prefetch: int = Field(default=1, ge=0)
    node_id: str = Field(default_factory=socket.gethostname)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    inline_result_max_bytes: int = Field(default=256 * 1024, gt=0)
    rapidocr_det_limit_side_len: int = Field(default=1280, gt=0)
    # OpenVINO where the CPU computes in bf16, else onnxruntime (engines/runtimes.py).
    rapidocr_runtime: RuntimeName = "auto"
    # On onnxruntime, the recogniser's matrix products and the detector's convolutions in int8 (engines/quantized.py).
    rapidocr_int8_recognizer: bool = True
    rapidocr_int8_detector: bool = True
    # Big pages whose text the detector would see too small are read in overlapping tiles (tiling.py).
    rapidocr_tile_above_side: int = Field(default=TilingSettings.above_side, gt=0)
    rapidocr_tile_min_text_px: float = Field(default=TilingSettings.min_text_px, ge=0)
    rapidocr_tile_side: int = Field(default=TilingSettings.tile_side, gt=0)
    rapidocr_tile_overlap: int = Field(default=TilingSettings.overlap, ge=0)
    null_seconds_per_page: float = Field(default=0.0, ge=0, description="makes the null engine slow, for tests")
    paddle_det_model_dir: Path | None = None
    paddle_rec_model_dir: Path | None = None
    paddle_det_model_name: str = "PP-OCRv6_small_det"
    paddle_rec_model_name: str = "PP-OCRv6_small_rec"
    # A page is tried this many times, the first retry after this delay, doubling (then it fails with its cause).
    page_attempts: int = Field(default=3, ge=1)
    # The same variable ingest reads: the largest page image a worker must accept.
    ingest_max_page_pixels: int = Field(default=80_000_000, gt=0)
    page_retry_delay_s: float = Field(default=5.0, ge=0)
    # Longest one page may take; then its OCR process is killed and replaced, and the page is retried.
    page_timeout_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _check_tiling(self) -> WorkerSettings:
        self.tiling()  # an overlap as wide as the tile fails here, at start, not on the first big page
        return self

    @property
    def pages_in_hand(self) -> int:
        """Messages taken at once, and pages read at once: one per process, plus the prefetch."""
        return self.ocr_processes + self.ocr_prefetch

    def tiling(self) -> TilingSettings:
        return TilingSettings(
            above_side=self.rapidocr_tile_above_side,
            min_text_px=self.rapidocr_tile_min_text_px,
            tile_side=self.rapidocr_tile_side,
            overlap=self.rapidocr_tile_overlap,
        )

    def engine_settings(self) -> EngineSettings:
        settings: EngineSettings = {
            "rapidocr": {
                "det_limit_side_len": self.rapidocr_det_limit_side_len,
                "int8_recognizer": self.rapidocr_int8_recognizer,
                "int8_detector": self.rapidocr_int8_detector,
                "runtime": self.rapidocr_runtime,
                "tiling": self.tiling(),
            },
            "null": {"seconds_per_page": self.null_seconds_per_page},
        }
        if self.paddle_det_model_dir and self.paddle_rec_model_dir:
            settings["paddle"] = {
                "det_model_dir": self.paddle_det_model_dir,
                "rec_model_dir": self.paddle_rec_model_dir,
            }
        return settings


@dataclass
class WorkerStats:
    in_flight: int = 0
    pages_done: int = 0
    pages_failed: int = 0


@dataclass
class Deps:
    settings: WorkerSettings
    worker_id: str
    pool: OcrPool
    blobs: BlobStore
    store: JobStore
    publisher: NsqPublisher
    stats: WorkerStats = field(default_factory=WorkerStats)
    # job id -> (when it was checked, whether it was cancelled)
    cancelled: dict[str, tuple[float, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Pages fetched and read at once, whatever batches they came in (a page waiting
        # longer for a process would eat its timeout).
        self.reading = asyncio.Semaphore(self.settings.pages_in_hand)


def result_blob_key(task: PageTask) -> str:
    return f"jobs/{task.job_id}/results/{task.doc_id}/{task.page:05d}.json"


class PagesNotRead(Unfinished):
    """Some pages of a batch could not be read this time (the others were reported done):
    the batch is tried again, and its retry and failure reports name these pages only."""


class PagesUnreadable(Unfinished, PermanentError):
    """Pages of a batch failed through their own fault (the others were reported done)."""


async def handle_batch(batch: PageBatch, delivery: Delivery, *, deps: Deps) -> None:
    """Read the batch's pages (as many at once as the pool has processes, plus the prefetch)
    and report those read in as few messages as fit; the pages left unread go back (or fail)
    together, naming each page and its cause."""
    if await _cancelled(batch.job_id, deps):
        log.info("page_dropped", pages=len(batch.tasks), reason="job cancelled")
        return
    outcomes = await asyncio.gather(*(_read_page(task, delivery, deps) for task in batch.tasks), return_exceptions=True)
    read = [outcome for outcome in outcomes if isinstance(outcome, ReadPage)]
    if read:
        await _report_done(batch.job_id, read, deps)
    unread = [
        (task, error) for task, error in zip(batch.tasks, outcomes, strict=True) if isinstance(error, BaseException)
    ]
    if not unread:
        return
    for _, error in unread:
        if not isinstance(error, Exception) or len(batch.tasks) == 1:
            raise error  # a single page's own error; or cancelled: the consumer gives the message back
    remaining = PageBatch(job_id=batch.job_id, tasks=tuple(task for task, _ in unread))
    cause = _causes(unread)
    if all(isinstance(error, PermanentError) for _, error in unread):
        raise PagesUnreadable(cause, remaining)
    raise PagesNotRead(cause, remaining)


@dataclass(frozen=True)
class ReadPage:
    done: PageDone
    engine: str
    result_bytes: int  # of the result carried inline


async def _read_page(task: PageTask, delivery: Delivery, deps: Deps) -> ReadPage:
    async with deps.reading:
        started = time.perf_counter()
        try:
            png = await deps.blobs.get(task.image)
        except BlobNotFound as error:
            raise PermanentError(str(error)) from error
        fetched = time.perf_counter() - started
        deps.stats.in_flight += 1
        try:
            page_json, seconds = await deps.pool.read(
                png,
                engine=task.engine,
                language=task.language,
                dpi=task.dpi,
                document=document_key(task.job_id, task.doc_id),
            )
        except PAGE_FAULTS as error:
            raise PermanentError(str(error)) from error
        finally:
            deps.stats.in_flight -= 1
    OCR_SECONDS.labels(task.engine).observe(seconds)
    page = PageText.model_validate_json(page_json)
    # The page's own time (its image fetched, then read), not its wait for a process: the
    # aggregator sizes batches by it and counts it as the node's busy time.
    timings = PageTimings(recognition_s=round(seconds, 3), total_s=round(fetched + seconds, 3))
    done = PageDone(
        job_id=task.job_id,
        doc_id=task.doc_id,
        page=task.page,
        node_id=deps.settings.node_id,
        worker_id=deps.worker_id,
        attempts=delivery.attempts,
        timings=timings,
        quality=PageQuality.of(page),
    )
    if len(page_json) <= deps.settings.inline_result_max_bytes:
        return ReadPage(done.model_copy(update={"result": page}), task.engine, len(page_json))
    # Large pages travel by reference: nsqd refuses messages over 1 MiB.
    await deps.blobs.put(result_blob_key(task), page_json.encode())
    return ReadPage(done.model_copy(update={"result_blob": result_blob_key(task)}), task.engine, 0)


async def _report_done(job_id: str, read: list[ReadPage], deps: Deps) -> None:
    reports: list[PagesDone] = []
    pages: list[PageDone] = []
    size = 0
    for page in read:
        if pages and size + page.result_bytes + REPORT_PAGE_BYTES > REPORT_BYTES:
            reports.append(PagesDone(job_id=job_id, pages=tuple(pages)))
            pages, size = [], 0
        pages.append(page.done)
        size += page.result_bytes + REPORT_PAGE_BYTES
    reports.append(PagesDone(job_id=job_id, pages=tuple(pages)))
    await deps.publisher.publish_many(PAGES_DONE, reports)
    deps.stats.pages_done += len(read)
    for page in read:
        PAGES.labels("done", page.engine).inc()
    # One line a report, not a page: it was a sixth of a worker's CPU on quick pages.
    first, seconds = read[0].done, round(sum(page.done.timings.total_s for page in read), 3)
    if len(read) == 1:
        log.info("page_ocr_done", pages=1, doc_id=first.doc_id, page=first.page, seconds=seconds)
    else:
        log.info("page_ocr_done", pages=len(read), first=f"{first.doc_id} page {first.page}", seconds=seconds)


def _causes(unread: list[tuple[PageTask, BaseException]]) -> str:
    """One page's cause as it is; several pages' causes each named by its page."""
    if len(unread) == 1:
        return _cause(unread[0][1])
    text = "; ".join(f"{task.doc_id} page {task.page}: {_cause(error)}" for task, error in unread)
    return text[:CAUSES_CHARS]


def _cause(error: BaseException) -> str:
    return str(error) if isinstance(error, PermanentError) else f"{type(error).__name__}: {error}"


async def _cancelled(job_id: str, deps: Deps) -> bool:
    """Whether the job was cancelled, asked of the database at most once a second per job
    (not once a page: a cancelled job has at most one window of pages queued)."""
    now = time.monotonic()
    checked = deps.cancelled.get(job_id)
    if checked is not None and now - checked[0] < CANCEL_CHECK_S:
        return checked[1]
    job = await deps.store.get_job(job_id)
    cancelled = job is not None and job.get("status") == "cancelled"
    if len(deps.cancelled) > 1000:
        deps.cancelled.clear()
    deps.cancelled[job_id] = (now, cancelled)
    return cancelled


def _attempt_report(task: PageTask, cause: str, attempts: int, deps: Deps) -> dict[str, object]:
    """What a retry or failure report says: which page, where, after how many tries, why."""
    return {
        "job_id": task.job_id,
        "doc_id": task.doc_id,
        "page": task.page,
        "node_id": deps.settings.node_id,
        "worker_id": deps.worker_id,
        "attempts": attempts,
        "error": cause,
    }


async def report_retry(batch: PageBatch, cause: str, attempts: int, *, deps: Deps) -> None:
    retrying = [PageRetrying.model_validate(_attempt_report(task, cause, attempts, deps)) for task in batch.tasks]
    await deps.publisher.publish_many(PAGE_RETRYING, retrying)


async def report_failure(batch: PageBatch, cause: str, attempts: int, *, deps: Deps) -> None:
    failed = [PageFailed.model_validate(_attempt_report(task, cause, attempts, deps)) for task in batch.tasks]
    await deps.publisher.publish_many(PAGE_FAILED, failed)
    deps.stats.pages_failed += len(failed)
    for task in batch.tasks:
        PAGES.labels("failed", task.engine).inc()


async def send_heartbeats(deps: Deps) -> None:
    while True:
        beat = NodeHeartbeat(
            node_id=deps.settings.node_id,
            worker_id=deps.worker_id,
            engine=deps.settings.engine,
            in_flight=deps.stats.in_flight,
            pages_done=deps.stats.pages_done,
            pages_failed=deps.stats.pages_failed,
        )
        try:
            await deps.publisher.publish(NODE_HEARTBEAT, beat)
        except Exception as error:  # noqa: BLE001  # a missed heartbeat must not stop the worker
            log.warning("heartbeat_failed", error=str(error))
        await asyncio.sleep(deps.settings.heartbeat_interval_s)


async def run(settings: WorkerSettings, nsq: NsqSettings, mongo: MongoSettings, blob: BlobSettings) -> None:
    worker_id = f"{settings.node_id}-{os.getpid()}"
    structlog.contextvars.bind_contextvars(node_id=settings.node_id, worker_id=worker_id)
    pool = OcrPool(
        settings.ocr_processes,
        settings.engine_settings(),
        preload=settings.engine,
        max_page_pixels=settings.ingest_max_page_pixels,
        page_timeout_s=settings.page_timeout_s,
    )
    try:
        started = time.perf_counter()
        # Pages are taken only once they can be read at once (readiness waits too).
        await pool.start()
        seconds = round(time.perf_counter() - started, 2)
        log.info("ocr_processes_started", processes=settings.ocr_processes, seconds=seconds)
        async with aiohttp.ClientSession() as session:
            nsq = await local_nsqd(session, nsq)  # this node's nsqd, where the stack runs one per node
        async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
            deps = Deps(settings, worker_id, pool, make_blob_store(blob, db), JobStore(db), publisher)
            pages = Subscription(
                PAGE_BATCH,
                OCR_CHANNEL,
                functools.partial(handle_batch, deps=deps),
                max_in_flight=settings.pages_in_hand,
                on_give_up=functools.partial(report_failure, deps=deps),
                on_retry=functools.partial(report_retry, deps=deps),
                # A page has its own attempts and retry delay, then fails with its cause.
                nsq=nsq.model_copy(
                    update={"max_attempts": settings.page_attempts, "backoff_base_s": settings.page_retry_delay_s}
                ),
            )
            await serve(
                nsq=nsq,
                publisher=publisher,
                subscriptions=[pages],
                background=[send_heartbeats(deps)],
                engine=settings.engine,
                processes=settings.ocr_processes,
            )
    finally:
        await asyncio.to_thread(pool.close)


def main() -> None:
    run_service("ocr-worker", run, WorkerSettings, NsqSettings, MongoSettings, BlobSettings)
