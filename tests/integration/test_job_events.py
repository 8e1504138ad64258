"""Live job events end to end through the real nsqd: the aggregator's coordinator publishes
what each flush changed, a gateway streams it to the job's listeners as server-sent events;
a listener starts from a snapshot, resumes with Last-Event-ID, and the stream ends with the job."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bulkocr.contracts import JOB_EVENTS, DocumentPlanned, JobEvent, JobEvents, JobSubmitted
from bulkocr.nsq import NsqPublisher
from bulkocr_aggregator.coordinator import Coordinator
from tests.integration.test_gateway import ALICE, BOB, submit
from tests.integration.test_store import page_done, page_failed

pytestmark = pytest.mark.integration

Event = tuple[str, str, dict[str, Any]]


async def read_events(response: aiohttp.ClientResponse, count: int, timeout_s: float = 10.0) -> list[Event]:
    """The next `count` events of a stream (id, name, data), fewer if it ends first."""

    async def read() -> list[Event]:
        events: list[Event] = []
        fields: dict[str, str] = {}
        while len(events) < count:
            raw = await response.content.readline()
            if not raw:
                return events
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif fields:
                events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                fields = {}
        return events

    return await asyncio.wait_for(read(), timeout_s)


async def test_a_listener_follows_a_job_from_snapshot_to_its_end(feeds, jobs: Coordinator):
    """Snapshot first (the status route's body), then per flush: progress with counts and
    nodes, each page with its outcome, a finished document, the job's end."""
    api, _ = feeds
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await jobs.submitted(JobSubmitted(job_id=job_id, owner="alice", documents_total=1))
    await jobs.planned(DocumentPlanned(job_id=job_id, doc_id="d0001", pages=2))
    await jobs.flush()
    response = await api.get(f"/api/bulk/jobs/{job_id}/events", headers=ALICE)
    assert (response.status, response.content_type) == (200, "text/event-stream")
    [(_, name, snapshot)] = await read_events(response, 1)
    assert (name, snapshot["job_id"], snapshot["progress"]["pages_total"]) == ("snapshot", job_id, 2)

    await jobs.outcome(page_done(1, job_id=job_id, doc_id="d0001", node="n1"))
    await jobs.flush()
    progress, page = await read_events(response, 2)
    assert progress[1] == "progress"
    assert (progress[2]["pages_done"], progress[2]["nodes"]["n1"]["pages_done"]) == (1, 1)
    assert (page[1], page[2]["page"], page[2]["status"]) == ("page", 1, "done")

    await jobs.outcome(page_failed(2, job_id=job_id, doc_id="d0001", node="n2"))
    await jobs.flush()
    rest = await read_events(response, 4)
    assert [name for _, name, _ in rest] == ["progress", "page", "document", "job"]
    assert rest[1][2] == {"doc_id": "d0001", "page": 2, "node_id": "n2", "status": "failed", "error": "boom"}
    assert rest[2][2]["doc_id"] == "d0001"
    assert rest[3][2] == {"status": "partial"}
    response.close()
    ids = [event_id for event_id, _, _ in [progress, page, *rest]]
    assert len(set(ids)) == len(ids)


async def test_a_listener_that_reconnects_gets_what_it_missed_or_a_fresh_snapshot(feeds, publisher: NsqPublisher):
    """Last-Event-ID known to this gateway: only the events after it; unknown (another gateway,
    or too old): a snapshot. Another owner's job, or an unknown one, is 404; no token is 401."""
    api, job_feeds = feeds
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    first = await api.get(f"/api/bulk/jobs/{job_id}/events", headers=ALICE)
    [(snapshot_id, _, _)] = await read_events(first, 1)
    news = [JobEvent(kind="progress", data={"pages_done": n}) for n in (1, 2, 3)]
    await publisher.publish(JOB_EVENTS, JobEvents(job_id=job_id, events=tuple(news)))
    seen = await read_events(first, 3)
    assert [data["pages_done"] for _, _, data in seen] == [1, 2, 3]

    again = await api.get(f"/api/bulk/jobs/{job_id}/events", headers={**ALICE, "Last-Event-ID": seen[0][0]})
    assert [data["pages_done"] for _, _, data in await read_events(again, 2)] == [2, 3]
    stale = await api.get(f"/api/bulk/jobs/{job_id}/events", headers={**ALICE, "Last-Event-ID": "elsewhere-9"})
    assert [name for _, name, _ in await read_events(stale, 1)] == ["snapshot"]
    assert snapshot_id.startswith(job_feeds.epoch)
    assert (await api.get(f"/api/bulk/jobs/{job_id}/events", headers=BOB)).status == 404
    assert (await api.get("/api/bulk/jobs/no-such-job/events", headers=ALICE)).status == 404
    assert (await api.get(f"/api/bulk/jobs/{job_id}/events")).status == 401
    for response in (first, again, stale):
        response.close()
