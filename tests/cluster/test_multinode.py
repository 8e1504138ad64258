"""Several nodes on one machine (tests/cluster/harness.py): a manager and three worker nodes in
network namespaces, each node with its own nsqd, as on a Docker Swarm. Whatever happens to a
node (cut off, back again, its worker replaced), every job completes with every page exactly
once: one stored outcome per page, done, and per-node totals that sum to the job's pages.

The null engine stands in for OCR at a fixed cost per page; message timeouts are a few
seconds, so a page held by a node that is cut off comes back to the others quickly.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bulkocr.contracts import ARCHIPELAGO_PUSH, DOCUMENT, JOB_COMPLETED, PAGE_BATCH, PAGES_DONE, PageBatch, PageTask
from bulkocr.nsq import NsqPublisher
from bulkocr.settings import NsqSettings
from tests.cluster.harness import MSG_TIMEOUT_S, NODES, Cluster
from tests.e2e import client
from tests.stores import SeedStore
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

NODE_IDS = {f"node-{name[1:]}" for name in NODES}
Status = dict[str, Any]


def tiff(pages: int) -> bytes:
    """A multi-page TIFF of small blank pages (the null engine reads nothing on them)."""
    frames = [Image.new("L", (160, 220), 255) for _ in range(pages)]
    out = io.BytesIO()
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:], dpi=(150, 150))
    return out.getvalue()


async def submit(http: aiohttp.ClientSession, cluster: Cluster, pages: int) -> str:
    return await client.submit(http, cluster.gateway_url, {"scan.tiff": tiff(pages)}, formats="txt")


async def wait_until(
    http: aiohttp.ClientSession, cluster: Cluster, job_id: str, condition: Callable[[Status], bool], what: str
) -> Status:
    return await client.wait_for_status(
        http, cluster.gateway_url, job_id, condition, timeout_s=120, what=what, meanwhile=cluster.check_processes
    )


async def finished(http: aiohttp.ClientSession, cluster: Cluster, job_id: str) -> Status:
    return await client.wait_finished(
        http, cluster.gateway_url, job_id, timeout_s=180, meanwhile=cluster.check_processes
    )


def node_pages(status: Status, node_id: str) -> int:
    return int(status["nodes"].get(node_id, {}).get("pages_done", 0))


async def assert_every_page_exactly_once(final: Status, store: SeedStore, job_id: str, pages: int) -> list[Status]:
    """The job completed, each of its pages has one stored outcome, done, and the per-node
    progress in its status sums to its pages and matches the stored outcomes node by node."""
    progress = final["progress"]
    assert final["status"] == "completed", final
    assert (progress["pages_total"], progress["pages_done"], progress["pages_failed"]) == (pages, pages, 0)
    records = [record async for record in store.pages.find({"job_id": job_id})]
    expected = sorted((d["doc_id"], n, "done") for d in final["documents"] for n in range(1, (d["pages"] or 0) + 1))
    assert sorted((r["doc_id"], r["page"], r["status"]) for r in records) == expected
    assert len(expected) == pages
    per_node = {node_id: node["pages_done"] for node_id, node in final["nodes"].items() if node["pages_done"]}
    assert sum(per_node.values()) == pages
    assert per_node == dict(Counter(r["node_id"] for r in records))
    return records


async def test_one_job_is_spread_over_every_node_and_each_page_read_once(cluster, http, store):
    """A 120-page job is read by all three nodes, each taking a fair share, and completes exactly
    once. Pages are queued on the manager's nsqd only: a worker spreads its one or two pages of
    credit over every nsqd that nsqlookupd names for the topic, and one that never gets a page
    holds it idle (so do ingest and the job.completed consumers, with theirs)."""
    pages = 120
    for topic in (PAGE_BATCH, DOCUMENT, JOB_COMPLETED, ARCHIPELAGO_PUSH):
        assert cluster.producers(topic.name) == {cluster.manager.address}, topic.name
    job_id = await submit(http, cluster, pages)
    final = await finished(http, cluster, job_id)
    records = await assert_every_page_exactly_once(final, store, job_id, pages)
    per_node = Counter(r["node_id"] for r in records)
    assert set(per_node) == NODE_IDS, per_node
    assert min(per_node.values()) >= pages // 6, f"equal nodes should each read about a third: {per_node}"
    # Each worker published its results to its own node's nsqd, found through nsqlookupd.
    for name, node in cluster.nodes.items():
        assert cluster.published_to(node.address, PAGES_DONE.name) >= per_node[node.node_id], name
    assert cluster.published_to(cluster.manager.address, PAGES_DONE.name) == 0


async def test_a_node_cut_off_mid_job_leaves_its_pages_to_the_others(cluster, http, store):
    """node-1's cable is pulled mid-job and stays out: the pages it held come back to the others
    when their message timeout passes, and the job completes without it, every page once."""
    pages = 120
    job_id = await submit(http, cluster, pages)

    def under_way(status: Status) -> bool:  # node-1 is reading, and the job 40% done
        return node_pages(status, "node-1") >= 3 and status["progress"]["pages_done"] >= pages * 2 // 5

    await wait_until(http, cluster, job_id, under_way, "node-1 reading, 40% done")
    cluster.cut("n1")
    cut_at = datetime.now(UTC)
    try:
        final = await finished(http, cluster, job_id)
        records = await assert_every_page_exactly_once(final, store, job_id, pages)
    finally:
        cluster.rejoin("n1")
    # What finished once the results in transit at the cut had landed was read elsewhere...
    later = [r for r in records if r["finished_at"] > cut_at + timedelta(seconds=2 * MSG_TIMEOUT_S)]
    assert later
    assert {r["node_id"] for r in later} <= NODE_IDS - {"node-1"}
    # ...including pages node-1 held: their messages timed out and were delivered again.
    assert any(r["attempts"] >= 2 and r["node_id"] != "node-1" for r in records)


async def test_a_node_that_rejoins_takes_pages_again(cluster, http, store):
    """node-1 is cut off while the others read on, then plugged in again: its worker's
    connections come back and it reads many more pages of the same job (more than the few it
    had in hand or in transit at the cut), and the job completes, every page once."""
    pages = 150
    job_id = await submit(http, cluster, pages)
    await wait_until(http, cluster, job_id, lambda s: node_pages(s, "node-1") >= 3, "node-1 reading")
    cluster.cut("n1")
    try:
        at_cut = (await client.job_status(http, cluster.gateway_url, job_id))["progress"]["pages_done"]
        # Longer than a message timeout: what node-1 held goes back to the queue meanwhile.
        cut_off = await wait_until(
            http, cluster, job_id, lambda s: s["progress"]["pages_done"] >= at_cut + 15, "the others reading on"
        )
    finally:
        cluster.rejoin("n1")
    again = node_pages(cut_off, "node-1") + 10
    resumed = await wait_until(
        http,
        cluster,
        job_id,
        lambda s: node_pages(s, "node-1") >= again or s["status"] in client.FINISHED,
        f"node-1 to read {again} pages",
    )
    assert resumed["status"] not in client.FINISHED, f"the job ended before node-1 was back: {resumed['nodes']}"
    final = await finished(http, cluster, job_id)
    await assert_every_page_exactly_once(final, store, job_id, pages)


async def test_rolling_update_of_the_workers_loses_nothing_and_reads_a_newer_minor_version(cluster, http, store):
    """The workers are replaced one node at a time while a job runs (SIGTERM: the old one drains
    and exits 0, a new one starts on the same node), as `docker service update` does. Page
    messages of a newer minor version (docs/messages.md, "Versions": an unknown field) are
    published straight to nsqd meanwhile and read. The job completes, every page once."""
    pages = 150
    job_id = await submit(http, cluster, pages)
    await wait_until(http, cluster, job_id, lambda s: s["progress"]["pages_done"] >= 10, "10 pages read")
    old_workers = {cluster.worker_id(name) for name in NODES}
    await replace_worker(cluster, NODES[0])
    copies, marks = await publish_newer_minor_copies(cluster, store, job_id)
    for name in NODES[1:]:
        await replace_worker(cluster, name)
    during = await client.job_status(http, cluster.gateway_url, job_id)
    assert during["status"] not in client.FINISHED, "the job ended before the update did: it proves nothing"
    final = await finished(http, cluster, job_id)
    records = await assert_every_page_exactly_once(final, store, job_id, pages)
    new_workers = {cluster.worker_id(name) for name in NODES}
    readers = {r["worker_id"] for r in records}
    assert readers & old_workers
    assert readers & new_workers
    # Each copy was read: those pages were done before, so a new reading of them is the copy's.
    await eventually(lambda: read_since(cluster, marks, job_id) >= copies, what="the newer-minor pages read")
    assert not logged_since(cluster, marks, '"message_rejected"')


async def replace_worker(cluster: Cluster, name: str) -> None:
    """Stop the node's worker as Swarm does (SIGTERM: it drains, pages flowing, and exits 0) and
    start a new one; return once the new one takes pages (a connection the old one did not
    have). Pages are held while it starts (15 s on a busy machine), or the other nodes could
    finish the job before the update ends and the test would prove nothing."""
    before = cluster.page_consumers().get(name, set())
    assert cluster.stop_worker(name) == 0, cluster.worker_log(name)[-2000:]
    with cluster.pages_held():
        cluster.start_worker(name)
        await eventually(
            lambda: bool(cluster.page_consumers().get(name, set()) - before),
            timeout_s=60,
            what=f"{name}'s new worker taking pages",
        )


async def publish_newer_minor_copies(
    cluster: Cluster, store: SeedStore, job_id: str
) -> tuple[set[Any], dict[Path, int]]:
    """Ten pages already read, published again one minor version above what the workers read,
    with a field they do not know; the pages (doc, page) and how far each worker log had got."""
    done = [r["_id"] async for r in store.pages.find({"job_id": job_id, "status": "done"}).limit(10)]
    tasks = [
        PageTask.model_validate({key: task[key] for key in PageTask.model_fields if key in task})
        for task in await store.page_tasks_for(done)
    ]
    assert len(tasks) == 10
    marks = {path: path.stat().st_size for path in cluster.worker_logs()}
    a = cluster.services.servers.addresses
    settings = NsqSettings(nsqd_tcp_addresses=[f"{a.host}:{a.nsqd_tcp}"], nsqd_http_address=f"{a.host}:{a.nsqd_http}")
    major, minor = PageTask.version()
    batch_major, batch_minor = PageBatch.version()
    async with NsqPublisher(settings) as publisher:
        for task in tasks:
            newer = {**task.model_dump(mode="json"), "v": f"{major}.{minor + 1}", "deskew": {"degrees": 0.5}}
            body = {"v": f"{batch_major}.{batch_minor + 1}", "job_id": job_id, "tasks": [newer], "priority": 2}
            await publisher.publish_body(PAGE_BATCH.name, json.dumps(body).encode())
    return {(task.doc_id, task.page) for task in tasks}, marks


def log_lines_since(cluster: Cluster, marks: dict[Path, int]) -> list[str]:
    lines = []
    for path in cluster.worker_logs():  # a worker started after the marks: its whole log
        with path.open("rb") as log:
            log.seek(marks.get(path, 0))
            lines += log.read().decode(errors="replace").splitlines()
    return lines


def read_since(cluster: Cluster, marks: dict[Path, int], job_id: str) -> set[Any]:
    """The (doc, page) of this job the workers have read since the marks."""
    found = set()
    for line in log_lines_since(cluster, marks):
        if '"page_ocr_done"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the line a worker is writing right now
        if event.get("job_id") == job_id:
            found.add((event["doc_id"], event["page"]))
    return found


def logged_since(cluster: Cluster, marks: dict[Path, int], words: str) -> list[str]:
    return [line for line in log_lines_since(cluster, marks) if words in line]
