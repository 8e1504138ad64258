"""Crash tests with real processes: whatever dies mid-job, the job completes with every page
exactly once (pages_done + pages_failed == pages_total, one stored outcome per page, per-node
totals equal to the job's).

The null engine stands in for OCR at a fixed cost per page, so a worker can be killed in the
middle of a page; timeouts and sweeps are shortened so recovery happens within seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bulkocr.contracts import PAGES_DONE, PageDone, PagesDone, PageTimings
from bulkocr.mongo import stored_result
from bulkocr.nsq import NsqPublisher
from bulkocr.page_model import PageText
from bulkocr.settings import NsqSettings
from bulkocr_devstack.stack import LocalStack
from tests.e2e import client
from tests.ocr_quality import TEST_DATA
from tests.stores import SeedStore
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

TOKEN = "chaos-token"
FILES = ["cardinal.pdf", "skew.pdf", "c02-22.pdf", "linn.png", "typewriter.png", "multipage.pdf"]
PAGES = 4 + 1 + 1 + 1 + 1 + 6
CHAOS_ENV = {
    "BULKOCR_API_TOKENS": f"chaos:{TOKEN}",
    "BULKOCR_ENGINE": "null",
    # GridFS, as on a Swarm, so its reads and writes go through the crashes too.
    "BULKOCR_BLOB_BACKEND": "gridfs",
    "BULKOCR_NULL_SECONDS_PER_PAGE": "1.5",
    "BULKOCR_NSQ_MSG_TIMEOUT_S": "4",
    "BULKOCR_NSQ_BACKOFF_BASE_S": "1",
    "BULKOCR_NSQ_BACKOFF_MAX_S": "4",
    "BULKOCR_NSQ_MAX_ATTEMPTS": "6",
    "BULKOCR_PAGE_ATTEMPTS": "6",
    "BULKOCR_PAGE_RETRY_DELAY_S": "1",
    "BULKOCR_NSQ_LOOKUPD_POLL_INTERVAL_S": "1",
    "BULKOCR_NSQ_RECONNECT_INTERVAL_S": "0.5",
    "BULKOCR_MONGO_TIMEOUT_S": "3",
    "BULKOCR_AGGREGATOR_CHECK_INTERVAL_S": "2",
    "BULKOCR_AGGREGATOR_SWEEP_INTERVAL_S": "1",
    "BULKOCR_AGGREGATOR_SWEEP_IDLE_S": "6",
    "BULKOCR_AGGREGATOR_SWEEP_MAX_IDLE_S": "20",
    "BULKOCR_HEARTBEAT_INTERVAL_S": "1",
}


@pytest.fixture
def stack(tmp_path) -> Iterator[LocalStack]:
    with LocalStack(tmp_path / "stack", workers=2, environment={**os.environ, **CHAOS_ENV}, grace_s=10) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


@pytest.fixture
async def store(stack: LocalStack) -> AsyncIterator[SeedStore]:
    async with client.stack_store(stack) as job_store:
        yield job_store


async def submit(http: aiohttp.ClientSession, stack: LocalStack) -> str:
    return await client.submit(http, stack.gateway_url, {name: (TEST_DATA / name).read_bytes() for name in FILES})


async def wait_for(
    http: aiohttp.ClientSession, stack: LocalStack, job_id: str, condition: Any, timeout_s: float, what: str
) -> dict[str, Any]:
    return await client.wait_for_status(http, stack.gateway_url, job_id, condition, timeout_s=timeout_s, what=what)


async def finished(http: aiohttp.ClientSession, stack: LocalStack, job_id: str) -> dict[str, Any]:
    return await client.wait_finished(http, stack.gateway_url, job_id, timeout_s=240)


def log_marks(stack: LocalStack) -> dict[str, int]:
    """How far each service's log has got: what is written after it is news."""
    return {name: (stack.state_dir / f"{name}.log").stat().st_size for name in stack.processes}


async def logged_since(
    stack: LocalStack, marks: dict[str, int], services: list[str], words: str, *, any_of: bool = False
) -> None:
    """Until the services' logs (or, with `any_of`, one of them) say `words` after their mark."""

    def said(name: str) -> bool:
        with (stack.state_dir / f"{name}.log").open("rb") as log:
            log.seek(marks[name])
            return words.encode() in log.read()

    check = any if any_of else all
    await eventually(lambda: check(said(name) for name in services), what=f"{services} to log {words}")


async def started(http: aiohttp.ClientSession, stack: LocalStack, job_id: str, pages: int = 2) -> None:
    """Once the job has read `pages` pages: the crash comes mid-job."""
    await client.wait_for_pages(http, stack.gateway_url, job_id, pages)


async def assert_every_page_exactly_once(final: dict[str, Any], store: SeedStore, job_id: str) -> None:
    progress = final["progress"]
    assert final["status"] == "completed", final
    assert progress["pages_total"] == PAGES
    assert progress["pages_done"] + progress["pages_failed"] == progress["pages_total"]
    assert progress["pages_done"] == PAGES
    assert sum(node["pages_done"] for node in final["nodes"].values()) == progress["pages_done"]
    assert sum(node["pages_failed"] for node in final["nodes"].values()) == progress["pages_failed"]
    # Every page of every document has its one outcome, done, and no other page has one.
    expected = sorted((d["doc_id"], n) for d in final["documents"] for n in range(1, (d["pages"] or 0) + 1))
    stored = sorted(
        [(page["doc_id"], page["page"], page["status"]) async for page in store.pages.find({"job_id": job_id})]
    )
    assert stored == [(doc_id, page, "done") for doc_id, page in expected]
    assert len(expected) == PAGES


async def test_worker_killed_mid_page(stack, http, store):
    """kill -9 of an OCR worker (and its OCR processes) in the middle of a page: its page comes
    back after the message timeout and is read by the other worker."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id)
    stack.stop_service("ocr-worker-1", kill=True)
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)


async def test_nsqd_killed_mid_job_and_started_again(stack, http, store):
    """kill -9 of nsqd loses its queued, in-flight and deferred messages; once it is back, the
    sweeper publishes the lost pages again from the page manifest."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id)
    marks = log_marks(stack)
    stack.servers.stop_server("nsqd", kill=True)
    # nsqd stays away until both workers have lost their connection to it.
    await logged_since(stack, marks, ["ocr-worker-1", "ocr-worker-2"], "connection closed")
    await asyncio.to_thread(stack.servers.start_server, "nsqd")
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)


async def test_database_restarted_mid_job(stack, http, store):
    """The database goes away for a few seconds: handlers fail, back off and retry, and nothing is lost."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id)
    marks = log_marks(stack)
    stack.servers.stop_server("database")
    # The database stays away until a handler has failed for it and been requeued.
    await logged_since(stack, marks, list(marks), '"message_requeued"', any_of=True)
    await asyncio.to_thread(stack.servers.start_server, "database")
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)


async def test_aggregator_killed_mid_job_and_started_again(stack, http, store):
    """kill -9 of the aggregator: its in-flight results are redelivered to the restarted one."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id)
    stack.stop_service("aggregator", kill=True)  # returns once the process is gone
    stack.start_service("aggregator", "bulkocr_aggregator")
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)


async def test_storm_of_duplicated_page_results(stack, http, store):
    """Every page result published ten more times while the job runs still counts once."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id, 3)
    a = stack.servers.addresses
    settings = NsqSettings(nsqd_tcp_addresses=[f"{a.host}:{a.nsqd_tcp}"], nsqd_http_address=f"{a.host}:{a.nsqd_http}")
    async with NsqPublisher(settings) as publisher:
        copies = []
        async for page in store.pages.find({"job_id": job_id, "status": "done"}):
            done = PageDone(
                job_id=job_id,
                doc_id=page["doc_id"],
                page=page["page"],
                node_id="storm",
                worker_id="storm",
                attempts=1,
                timings=PageTimings(total_s=9.0),
                result=PageText.model_validate(stored_result(await store.page_results.find_one({"_id": page["_id"]}))),
            )
            copies.extend([PagesDone(job_id=job_id, pages=(done, done))] * 5)  # twice in one report too
        await publisher.publish_many(PAGES_DONE, copies)
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)
    assert "storm" not in final["nodes"]


async def test_worker_stopped_with_sigterm_finishes_its_page_and_exits(stack, http, store):
    """SIGTERM (as Swarm sends) mid-page: the worker takes no new page, finishes the one in hand,
    exits 0 within the drain timeout, and the job still completes with every page once."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id)
    worker = stack.processes.pop("ocr-worker-1")
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 15) == 0
    log = (stack.state_dir / "ocr-worker-1.log").read_text()
    assert '"consumer_closed"' in log
    assert '"reason": "shutdown"' not in log, "a page was given back instead of finished"
    final = await finished(http, stack, job_id)
    await assert_every_page_exactly_once(final, store, job_id)


async def test_cancelled_job_stops_and_its_remaining_pages_are_dropped_unread(stack, http, store):
    """Cancel mid-job: status `cancelled`, the pages not yet read are dropped by the workers without
    OCR, and the counts stay consistent (done + failed never exceeds total, and stop moving)."""
    job_id = await submit(http, stack)
    await started(http, stack, job_id, 1)
    async with http.post(f"{stack.gateway_url}/api/bulk/jobs/{job_id}/cancel") as response:
        assert response.status == 202, await response.text()
    cancelled = await wait_for(http, stack, job_id, lambda s: s["status"] == "cancelled", 30, "cancelled")
    # Fixed sleeps here prove that something does not happen: pages already in a worker's
    # hands may still finish within 4 s, and after that nothing moves for 3 s more.
    await asyncio.sleep(4)
    settled = await client.job_status(http, stack.gateway_url, job_id)
    await asyncio.sleep(3)
    final = await client.job_status(http, stack.gateway_url, job_id)
    assert final["status"] == "cancelled"
    assert final["progress"] == settled["progress"], "pages kept being read after the cancel"
    progress = final["progress"]
    assert progress["pages_done"] + progress["pages_failed"] < progress["pages_total"] == PAGES
    assert progress["pages_done"] >= cancelled["progress"]["pages_done"]
    logs = "".join((stack.state_dir / f"ocr-worker-{n}.log").read_text() for n in (1, 2))
    assert '"page_dropped"' in logs
    async with http.post(f"{stack.gateway_url}/api/bulk/jobs/{job_id}/cancel") as response:
        assert response.status == 409
