"""The OCR worker's handling of a batch of pages, against real nsqd and the real database:
the pages it reads are reported together, and a page it cannot read fails alone, with its
own cause, while its message is kept as a dead letter."""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bulkocr.blobs import BlobStore
from bulkocr.contracts import (
    OCR_CHANNEL,
    PAGE_FAILED,
    PAGES_DONE,
    DeadLetter,
    PageBatch,
    PageTask,
    Topic,
    dead_letter_topic,
)
from bulkocr.mongo import Database, JobStore
from bulkocr.nsq import NsqAdmin, NsqPublisher, consuming
from bulkocr.settings import NsqSettings
from bulkocr_ocr_worker.pool import OcrPool
from bulkocr_ocr_worker.service import Deps, WorkerSettings, handle_batch, report_failure, report_retry
from tests.integration.test_pipeline_services import collecting
from tests.waiting import eventually


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def worker(db: Database, blobs: BlobStore, publisher: NsqPublisher) -> AsyncIterator[Deps]:
    pool = OcrPool(1, {"null": {}}, preload="null")
    yield Deps(WorkerSettings(engine="null", node_id="node-a"), "node-a-1", pool, blobs, JobStore(db), publisher)
    await asyncio.to_thread(pool.close)


async def test_a_batch_reports_what_it_read_together_and_fails_only_the_unreadable_page(
    worker: Deps, blobs: BlobStore, publisher: NsqPublisher, nsq_settings: NsqSettings, nsq_admin: NsqAdmin
):
    job_id = uuid.uuid4().hex
    images = {1: png(120, 80), 2: b"not an image at all", 3: png(60, 90)}
    tasks = []
    for page, data in images.items():
        key = f"jobs/{job_id}/pages/d0001/{page:05d}.png"
        await blobs.put(key, data)
        tasks.append(PageTask(job_id=job_id, doc_id="d0001", page=page, image=key, dpi=300, engine="null"))
    topic = Topic(f"test-pages-{uuid.uuid4().hex[:8]}", PageBatch)
    await nsq_admin.create_channel(topic.name, OCR_CHANNEL)
    letters_topic = dead_letter_topic(topic.name)
    await nsq_admin.create_channel(letters_topic.name, OCR_CHANNEL)
    async with (
        collecting(PAGES_DONE, nsq_admin, publisher, nsq_settings, job_id) as reports,
        collecting(PAGE_FAILED, nsq_admin, publisher, nsq_settings, job_id) as failures,
        consuming(
            topic,
            OCR_CHANNEL,
            functools.partial(handle_batch, deps=worker),
            publisher=publisher,
            settings=nsq_settings,
            on_give_up=functools.partial(report_failure, deps=worker),
            on_retry=functools.partial(report_retry, deps=worker),
        ),
    ):
        letters: list[DeadLetter] = []

        async def keep(letter: DeadLetter, _: object) -> None:
            letters.append(letter)

        async with consuming(letters_topic, OCR_CHANNEL, keep, publisher=publisher, settings=nsq_settings):
            await publisher.publish(topic, PageBatch(job_id=job_id, tasks=tuple(tasks)))
            await eventually(
                lambda: len(reports) == len(failures) == len(letters) == 1, what="the reports and the dead letter"
            )
    [report] = reports
    assert [(page.page, page.result.width if page.result else None) for page in report.pages] == [(1, 120), (3, 60)]
    assert all(page.node_id == "node-a" and page.attempts == 1 for page in report.pages)
    [failed] = failures
    assert failed.page == 2
    assert failed.error.startswith("PagesUnreadable: page image cannot be read")
    assert "d0001 page" not in failed.error  # one page left: its cause as it is
    [letter] = letters
    assert PageBatch.model_validate_json(letter.body).tasks == tuple(tasks)  # kept whole, for a replay
    assert (worker.stats.pages_done, worker.stats.pages_failed) == (2, 1)
