"""Jobs at the sizes users have, end to end on real processes: a big job survives its
coordinator dying half way, and a small job submitted behind a big one is not kept waiting.

The null engine stands in for OCR, so what is measured is bulkocr's own coordination.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bulkocr.mongo import connect_mongo
from bulkocr.settings import MongoSettings
from bulkocr_devstack.stack import LocalStack
from tests.e2e import client
from tests.e2e.test_chaos import CHAOS_ENV, TOKEN
from tests.stores import SeedStore

pytestmark = pytest.mark.e2e


def tiff_of(pages: int) -> bytes:
    """One TIFF of many small blank pages: cheap to split, so the coordination shows."""
    frame = Image.new("1", (200, 100), 1)
    buffer = io.BytesIO()
    frame.save(buffer, format="TIFF", save_all=True, append_images=[frame] * (pages - 1), compression="raw")
    return buffer.getvalue()


BIG_JOB_PAGES = 2000


async def big_job_with_a_kill(
    tmp_path: Path, name: str, kill: Callable[[LocalStack], None]
) -> tuple[LocalStack, client.Status, list[tuple[int, str]]]:
    """A 2,000-page job of quick pages on its own stack, `kill` done a few hundred pages in:
    the stack (its logs stay readable), the job's final status and its stored outcomes."""
    environment = {**os.environ, **CHAOS_ENV, "BULKOCR_BLOB_BACKEND": "directory", "BULKOCR_NULL_SECONDS_PER_PAGE": "0"}
    with LocalStack(tmp_path / "stack", workers=2, environment=environment, grace_s=10) as stack:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            connect_mongo(MongoSettings(url=stack.servers.addresses.mongo_url, timeout_s=3)) as db,
        ):
            job_id = await submit_tiff(http, stack, name, BIG_JOB_PAGES)
            await client.wait_for_pages(http, stack.gateway_url, job_id, 300, timeout_s=120)
            kill(stack)
            final = await client.wait_finished(http, stack.gateway_url, job_id, timeout_s=300)
            outcomes = SeedStore(db).pages.find({"job_id": job_id})
            stored = sorted([(page["page"], page["status"]) async for page in outcomes])
    return stack, final, stored


def restart_aggregator(stack: LocalStack) -> None:
    stack.stop_service("aggregator", kill=True)
    stack.start_service("aggregator", "bulkocr_aggregator")


async def test_aggregator_killed_mid_way_through_a_big_job_rebuilds_its_tallies(tmp_path):
    """kill -9 of the aggregator a few hundred pages into a 2,000-page job: the restarted one
    takes the job over (one scan), its tallies match the stored outcomes exactly, and the job
    completes with every page once and per-node totals that add up."""
    stack, final, stored = await big_job_with_a_kill(tmp_path, "box-17.tif", restart_aggregator)
    progress = final["progress"]
    assert final["status"] == "completed", final
    assert progress == {"pages_total": BIG_JOB_PAGES, "pages_done": BIG_JOB_PAGES, "pages_failed": 0, "percent": 100.0}
    assert stored == [(page, "done") for page in range(1, BIG_JOB_PAGES + 1)]
    assert sum(node["pages_done"] for node in final["nodes"].values()) == BIG_JOB_PAGES
    log = (stack.state_dir / "aggregator.log").read_text()
    assert '"job_taken_over"' in log
    assert '"tally_drift"' not in log


async def test_a_worker_killed_holding_batches_of_quick_pages_loses_none(tmp_path):
    """kill -9 of one OCR worker a few hundred pages into a 2,000-page job of quick pages,
    which travel 32 to a message: the batches it held come back to the other worker once
    their time is up, and the job completes with every page once, counted once."""
    stack, final, stored = await big_job_with_a_kill(
        tmp_path, "box-18.tif", lambda stack: stack.stop_service("ocr-worker-1", kill=True)
    )
    assert final["status"] == "completed", final
    assert final["progress"]["pages_done"] == BIG_JOB_PAGES
    assert stored == [(page, "done") for page in range(1, BIG_JOB_PAGES + 1)]
    assert sum(node["pages_done"] for node in final["nodes"].values()) == BIG_JOB_PAGES
    log = (stack.state_dir / "ocr-worker-2.log").read_text().splitlines()
    batch_sizes = [json.loads(line)["pages"] for line in log if '"page_ocr_done"' in line]
    assert max(batch_sizes) > 1, "the pages were quick: they should have gone several to a message"


async def submit_tiff(http: aiohttp.ClientSession, stack: LocalStack, name: str, pages: int) -> str:
    return await client.submit(http, stack.gateway_url, {name: tiff_of(pages)})


async def test_a_small_job_behind_a_big_one_finishes_first(tmp_path):
    """A 4-page job submitted once a 1,000-page job is being read (OCR at 0.1 s a page, 2 workers, so
    the big job needs more than 50 s) completes within 20 s, while the big job still runs."""
    environment = {
        **os.environ,
        **CHAOS_ENV,
        "BULKOCR_BLOB_BACKEND": "directory",
        "BULKOCR_NULL_SECONDS_PER_PAGE": "0.1",
    }
    with LocalStack(tmp_path / "stack", workers=2, environment=environment, grace_s=10) as stack:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            big = await submit_tiff(http, stack, "big.tif", 1000)
            await client.wait_for_pages(http, stack.gateway_url, big, 1)
            started = time.monotonic()
            small = await submit_tiff(http, stack, "small.tif", 4)
            final = await client.wait_finished(http, stack.gateway_url, small, timeout_s=20)
            waited = time.monotonic() - started
            big_now = await client.job_status(http, stack.gateway_url, big)
    assert final["status"] == "completed"
    assert final["progress"]["pages_done"] == 4
    assert waited < 20
    assert big_now["status"] == "processing", big_now["progress"]
