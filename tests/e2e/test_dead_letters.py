"""Dead letters an operator can act on: a page that failed for a cause outside it is kept with
that cause, listed by `bulkocr dlq`, and once the cause is fixed a replay reads it again and
counts it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bulkocr_devstack.stack import LocalStack
from tests.e2e import client
from tests.ocr_quality import TEST_DATA
from tests.stores import SeedStore
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

ADMIN, CURATOR = "admin-token", "curator-token"
PAGES = 6  # multipage.pdf
ENVIRONMENT = {
    "BULKOCR_API_TOKENS": f"operator:{ADMIN},curator:{CURATOR}",
    "BULKOCR_ADMIN_OWNERS": "operator",
    "BULKOCR_ENGINE": "null",
    "BULKOCR_NSQ_LOOKUPD_POLL_INTERVAL_S": "1",
}


@pytest.fixture
def stack(tmp_path) -> Iterator[LocalStack]:
    with LocalStack(tmp_path / "stack", workers=2, environment={**os.environ, **ENVIRONMENT}, grace_s=10) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN}"}) as session:
        yield session


@pytest.fixture
async def store(stack: LocalStack) -> AsyncIterator[SeedStore]:
    async with client.stack_store(stack) as job_store:
        yield job_store


def bulkocr(stack: LocalStack, *arguments: str, token: str = ADMIN) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "BULKOCR_URL": stack.gateway_url, "BULKOCR_TOKEN": token}
    command = [sys.executable, "-m", "bulkocr_client.cli", *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)


def page_letters(stack: LocalStack) -> list[dict[str, Any]]:
    listed = bulkocr(stack, "dlq", "list", "--topic", "bulkocr.page.batch", "--json")
    assert listed.returncode == 0, listed.stderr
    letters: list[dict[str, Any]] = json.loads(listed.stdout)["dead_letters"]
    return letters


async def test_a_page_failed_for_a_missing_image_is_replayed_after_the_fix_and_counted_once(stack, http, store):
    """The workers are held back while ingest stores the pages; one page image goes missing (a
    storage fault), so that page fails with the cause and its message is kept. The operator
    lists it, a curator may not; the image comes back; `bulkocr dlq replay` reads the page
    again, and the job completes with every page done exactly once."""
    stack.stop_service("ocr-worker-1")
    stack.stop_service("ocr-worker-2")
    job_id = await client.submit(http, stack.gateway_url, {"multipage.pdf": (TEST_DATA / "multipage.pdf").read_bytes()})
    pages = stack.state_dir / "blobs" / "jobs" / job_id / "pages" / "d0001"
    await eventually(lambda: len(list(pages.glob("*.png"))) == PAGES, what="ingest to store every page")
    missing, kept = pages / "00002.png", stack.state_dir / "00002.png.kept"
    missing.rename(kept)
    stack.start_worker(1)
    stack.start_worker(2)

    first = await client.wait_finished(http, stack.gateway_url, job_id, timeout_s=120)
    assert (first["progress"]["pages_done"], first["progress"]["pages_failed"]) == (PAGES - 1, 1), first
    await eventually(lambda: len(page_letters(stack)) == 1, what="the keeper to store the page's letter")
    [letter] = page_letters(stack)
    assert (letter["job_id"], letter["doc_id"], letter["page"]) == (job_id, "d0001", 2)
    assert "00002.png" in letter["cause"]
    refused = bulkocr(stack, "dlq", "list", token=CURATOR)
    assert refused.returncode == 2
    assert "403" in refused.stderr

    kept.rename(missing)
    replayed = bulkocr(stack, "dlq", "replay", letter["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert f"failed pages of job {job_id}" in replayed.stdout

    def completed(status: dict[str, Any]) -> bool:
        return bool(status["status"] == "completed" and status["progress"]["pages_done"] == PAGES)

    final = await client.wait_for_status(http, stack.gateway_url, job_id, completed, timeout_s=120, what="the replay")
    assert final["progress"]["pages_failed"] == 0
    stored = sorted([(p["page"], p["status"]) async for p in store.pages.find({"job_id": job_id})])
    assert stored == [(page, "done") for page in range(1, PAGES + 1)]
    [after] = page_letters(stack)
    assert after["replays"] == 1
    assert bulkocr(stack, "dlq", "drop", letter["id"]).returncode == 0
    assert page_letters(stack) == []
