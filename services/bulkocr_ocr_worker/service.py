"""OCR worker: read one page per message with the job's engine, report the result.

The pool has `BULKOCR_OCR_PROCESSES` processes and the consumer takes that many messages at
a time, plus `BULKOCR_OCR_PREFETCH` (so the next page is at hand as one is reported). Long
pages are TOUCHed by the NSQ adapter. After the last attempt the page is reported failed
with its cause (and the message is kept on the dead-letter topic).
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
    PAGE,
    PAGE_DONE,
    PAGE_FAILED,
    PAGE_RETRYING,
    NodeHeartbeat,
    PageDone,
    PageFailed,
    PageRetrying,
    PageTask,
    PageTimings,
)
from bulkocr.errors import BlobNotFound, PermanentError
from bulkocr.mongo import JobStore, connect_mongo, document_key
from bulkocr.nsq import Delivery, NsqPublisher, local_nsqd
from bulkocr.page_model import PageQuality, PageText
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_ocr_worker.engines import EngineUnavailableError
from bulkocr_ocr_worker.metrics import OCR_SECONDS, PAGES
from bulkocr_ocr_worker.pool import EngineSettings, OcrPool, PageUnreadable
from bulkocr_ocr_worker.tiling import TilingSettings

log = structlog.get_logger(__name__)

CANCEL_CHECK_S = 1.0
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
    # The recogniser's matrix products and the detector's convolutions in int8 (engines/quantized.py).
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


def result_blob_key(task: PageTask) -> str:
    return f"jobs/{task.job_id}/results/{task.doc_id}/{task.page:05d}.json"


async def handle_page(task: PageTask, delivery: Delivery, *, deps: Deps) -> None:
    started = time.perf_counter()
    if await _cancelled(task.job_id, deps):
        log.info("page_dropped", reason="job cancelled")
        return
    try:
        png = await deps.blobs.get(task.image)
    except BlobNotFound as error:
        raise PermanentError(str(error)) from error
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
    done = PageDone(
        job_id=task.job_id,
        doc_id=task.doc_id,
        page=task.page,
        node_id=deps.settings.node_id,
        worker_id=deps.worker_id,
        attempts=delivery.attempts,
        timings=PageTimings(recognition_s=round(seconds, 3), total_s=round(time.perf_counter() - started, 3)),
    )
    page = PageText.model_validate_json(page_json)
    done = done.model_copy(update={"quality": PageQuality.of(page)})
    if len(page_json) <= deps.settings.inline_result_max_bytes:
        done = done.model_copy(update={"result": page})
    else:  # large pages travel by reference: nsqd refuses messages over 1 MiB
        await deps.blobs.put(result_blob_key(task), page_json.encode())
        done = done.model_copy(update={"result_blob": result_blob_key(task)})
    await deps.publisher.publish(PAGE_DONE, done)
    deps.stats.pages_done += 1
    PAGES.labels("done", task.engine).inc()
    log.info("page_ocr_done", seconds=done.timings.total_s)


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


async def report_retry(task: PageTask, cause: str, attempts: int, *, deps: Deps) -> None:
    retrying = PageRetrying.model_validate(_attempt_report(task, cause, attempts, deps))
    await deps.publisher.publish(PAGE_RETRYING, retrying)


async def report_failure(task: PageTask, cause: str, attempts: int, *, deps: Deps) -> None:
    failed = PageFailed.model_validate(_attempt_report(task, cause, attempts, deps))
    await deps.publisher.publish(PAGE_FAILED, failed)
    deps.stats.pages_failed += 1
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
        async with aiohttp.ClientSession() as session:
            nsq = await local_nsqd(session, nsq)  # this node's nsqd, where the stack runs one per node
        async with connect_mongo(mongo) as db, NsqPublisher(nsq) as publisher:
            deps = Deps(settings, worker_id, pool, make_blob_store(blob, db), JobStore(db), publisher)
            pages = Subscription(
                PAGE,
                OCR_CHANNEL,
                functools.partial(handle_page, deps=deps),
                max_in_flight=settings.ocr_processes + settings.ocr_prefetch,
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
