"""The autoscaler's loop on real nsqd and nsqlookupd, against the fake Engine API: pages
published to `bulkocr.page.batch` (one page each) scale the OCR workers to ceil(pages / target) within the
labels' bounds; conflicts are retried and land; dry run only logs; a drained queue scales
down once the cooldown has passed; a service without the label is left alone; a failing
Engine is logged and the next round scales; `python -m bulkocr_autoscaler` runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from bulkocr.contracts import OCR_CHANNEL, PAGE_BATCH, PageBatch, PageTask
from bulkocr.nsq import NsqAdmin, NsqPublisher
from bulkocr.settings import NsqSettings
from bulkocr_autoscaler.service import run
from bulkocr_autoscaler.settings import AutoscalerSettings
from tests.fakes.docker_engine import FakeDockerEngine
from tests.waiting import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NAME = "bulkocr_ocr-worker"


def labels(*, low: int = 1, high: int = 16, target: int = 20) -> dict[str, str]:
    return {
        "bulkocr.autoscale": "true",
        "bulkocr.autoscale.min": str(low),
        "bulkocr.autoscale.max": str(high),
        "bulkocr.autoscale.target": str(target),
    }


def metric(name: str, **labelled: str) -> float:
    return REGISTRY.get_sample_value(name, labelled) or 0.0


async def empty_pages(settings: NsqSettings) -> None:
    """Drop whatever earlier tests left in the workers' queue, so the backlog is ours."""
    base = f"http://{settings.nsqd_http_address}"
    async with aiohttp.ClientSession() as http:
        for path, params in (
            ("/channel/empty", {"topic": PAGE_BATCH.name, "channel": OCR_CHANNEL}),
            ("/topic/empty", {"topic": PAGE_BATCH.name}),
        ):
            async with http.post(base + path, params=params) as response:
                assert response.status == 200, await response.text()


@pytest.fixture
async def pages(nsq_settings: NsqSettings, nsq_admin: NsqAdmin, publisher: NsqPublisher) -> AsyncIterator[Any]:
    """`await pages(n)` queues n page tasks for the workers' channel, which nobody consumes."""
    await nsq_admin.create_channel(PAGE_BATCH.name, OCR_CHANNEL)
    await empty_pages(nsq_settings)

    async def queue(count: int) -> None:
        job_id = uuid.uuid4().hex
        tasks = [
            PageTask(job_id=job_id, doc_id="d0001", page=n, image=f"jobs/{job_id}/p{n}", dpi=300, engine="null")
            for n in range(1, count + 1)
        ]
        # One page a message, as the aggregator sends pages that take seconds to read.
        await publisher.publish_many(PAGE_BATCH, [PageBatch(job_id=job_id, tasks=(task,)) for task in tasks])

    yield queue
    await empty_pages(nsq_settings)


@pytest.fixture
async def engine() -> AsyncIterator[FakeDockerEngine]:
    async with FakeDockerEngine() as fake:
        yield fake


Start = Callable[..., Awaitable[asyncio.Event]]


@pytest.fixture
async def start_autoscaler(engine: FakeDockerEngine, nsq_settings: NsqSettings) -> AsyncIterator[Start]:
    """Run the service in this process against the fake Engine's socket: rounds every 0.1 s,
    no up cooldown, a down cooldown of 1 s unless overridden."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: object) -> asyncio.Event:
        values: dict[str, object] = {
            "service": NAME,
            "interval_s": 0.1,
            "up_cooldown_s": 0,
            "down_cooldown_s": 1.0,
            "docker_host": f"unix://{engine.socket_path}",
            **overrides,
        }
        stop = asyncio.Event()
        task = asyncio.create_task(run(AutoscalerSettings.model_validate(values), nsq_settings, stop=stop))
        running.append((stop, task))
        return stop

    yield start
    for stop, task in running:
        stop.set()
        await task


async def rounds_seen(engine: FakeDockerEngine, count: int) -> None:
    """Wait until the service has been read `count` more times (a round reads it once)."""
    target = len(engine.calls("inspect")) + count
    await eventually(lambda: len(engine.calls("inspect")) >= target, what=f"{count} more rounds")


def decisions(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "autoscale_decision"]


@pytest.mark.parametrize(("high", "target", "expected"), [(16, 20, 3), (2, 10, 2)])
async def test_pages_scale_the_workers_to_the_backlog(engine, pages, start_autoscaler, high, target, expected):
    """45 pages: ceil(45 / 20) = 3 workers; with a target of 10 the want of 5 is held to the
    max of 2. One update, then the count holds (no flapping on a steady backlog)."""
    engine.add_service(NAME, replicas=1, labels=labels(high=high, target=target))
    ups = metric("bulkocr_autoscaler_scale_actions_total", direction="up")
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler()
        await eventually(lambda: engine.replicas(NAME) == expected, what=f"{expected} replicas")
        await rounds_seen(engine, 5)
    assert len(engine.updates_of(NAME)) == 1
    assert engine.replicas(NAME) == expected
    assert metric("bulkocr_autoscaler_scale_actions_total", direction="up") == ups + 1
    assert metric("bulkocr_autoscaler_backlog_pages") == 45
    assert metric("bulkocr_autoscaler_desired_replicas") == expected
    last = decisions(logs)[-1]
    assert {key: last[key] for key in ("backlog", "current", "desired", "reason", "dry_run")} == {
        "backlog": 45,
        "current": expected,
        "desired": expected,
        "reason": "steady",
        "dry_run": False,
    }


async def test_conflicts_are_retried_and_the_scaling_lands(engine, pages, start_autoscaler):
    """Another writer moves the service on just before two of our updates: both are refused
    as out of sequence, read again, and the third lands in the same round."""
    engine.add_service(NAME, replicas=1, labels=labels())
    engine.race(2)
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler()
        await eventually(lambda: engine.replicas(NAME) == 3, what="3 replicas")
    assert [call.status for call in engine.calls("update")] == [500, 500, 200]
    assert len([entry for entry in logs if entry["event"] == "autoscale_conflict"]) == 2
    (scaled,) = [entry for entry in logs if entry["event"] == "autoscale_scaled"]
    assert (scaled["previous"], scaled["replicas"], scaled["conflicts"]) == (1, 3, 2)


async def test_dry_run_decides_and_logs_but_changes_nothing(engine, pages, start_autoscaler):
    """In dry run each round logs what it would do, and the Engine is only read."""
    engine.add_service(NAME, replicas=1, labels=labels())
    ups = metric("bulkocr_autoscaler_scale_actions_total", direction="up")
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler(dry_run=True)
        await eventually(lambda: any(d["desired"] == 3 for d in decisions(logs)), what="a decision for 3")
        await rounds_seen(engine, 3)
    assert engine.calls("update") == []
    assert engine.replicas(NAME) == 1
    assert metric("bulkocr_autoscaler_scale_actions_total", direction="up") == ups
    wanted = [d for d in decisions(logs) if d["desired"] == 3]
    assert all(d["dry_run"] is True and d["current"] == 1 and d["reason"] == "scale_up" for d in wanted)


async def test_a_drained_queue_scales_down_once_the_cooldown_has_passed(engine, pages, start_autoscaler, nsq_settings):
    """Up at once to 3; the pages go; the count holds for the down cooldown (2 s) after the
    scale-up, then drops to the minimum."""
    engine.add_service(NAME, replicas=1, labels=labels())
    downs = metric("bulkocr_autoscaler_scale_actions_total", direction="down")
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler(down_cooldown_s=2.0)
        await eventually(lambda: engine.replicas(NAME) == 3, what="3 replicas")
        await empty_pages(nsq_settings)
        await eventually(lambda: engine.replicas(NAME) == 1, what="back to 1 replica")
    up, down = engine.updates_of(NAME)
    assert down.at - up.at >= 2.0
    assert any(d["reason"] == "down_cooldown" and d["backlog"] == 0 for d in decisions(logs))
    assert metric("bulkocr_autoscaler_scale_actions_total", direction="down") == downs + 1


async def test_a_service_without_the_label_is_left_alone(engine, pages, start_autoscaler):
    """No `bulkocr.autoscale: "true"`: the service is read, nothing is written, and why is
    said once at info."""
    engine.add_service(NAME, replicas=2, labels={"bulkocr.autoscale.max": "8"})
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler()
        await rounds_seen(engine, 5)
    assert engine.calls("update") == []
    assert engine.replicas(NAME) == 2
    skipped = [entry for entry in logs if entry["event"] == "autoscale_skipped"]
    assert [entry["log_level"] for entry in skipped][:2] == ["info", "debug"]
    assert decisions(logs) == []


async def test_a_failing_engine_is_logged_and_a_later_round_scales(engine, pages, start_autoscaler):
    """Two rounds find the Engine failing (500, then a read that times out): each is logged
    with its stage and counted, nothing crashes, and the next round scales."""
    engine.add_service(NAME, replicas=1, labels=labels())
    engine.fail("inspect", 500, message="rpc error: code = Unavailable desc = the swarm has no leader")
    engine.fail("inspect", delay_s=30)
    errors = metric("bulkocr_autoscaler_errors_total", stage="inspect")
    await pages(45)
    with capture_logs() as logs:
        await start_autoscaler(docker_timeout_s=0.5)
        await eventually(lambda: engine.replicas(NAME) == 3, what="3 replicas")
    failed = [entry for entry in logs if entry["event"] == "autoscale_failed"]
    assert [entry["stage"] for entry in failed] == ["inspect", "inspect"]
    assert "the swarm has no leader" in failed[0]["error"]
    assert metric("bulkocr_autoscaler_errors_total", stage="inspect") == errors + 2


async def test_the_service_runs_as_a_module_and_stops_on_sigterm(engine, pages, nsq_settings):
    """`python -m bulkocr_autoscaler` reads its settings from the environment, scales over
    the socket, logs JSON lines, exports its metrics on the shared runtime's /metrics, and
    exits cleanly on SIGTERM (Swarm's stop)."""
    engine.add_service(NAME, replicas=1, labels=labels())
    await pages(45)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "libs"), str(REPO / "services"), os.environ.get("PYTHONPATH", "")]),
        "BULKOCR_LOG_FORMAT": "json",
        "BULKOCR_OPS_HOST": "127.0.0.1",
        "BULKOCR_OPS_PORT": "0",
        "BULKOCR_AUTOSCALER_SERVICE": NAME,
        "BULKOCR_AUTOSCALER_INTERVAL_S": "0.2",
        "BULKOCR_AUTOSCALER_DOCKER_HOST": f"unix://{engine.socket_path}",
        "BULKOCR_NSQ_NSQD_TCP_ADDRESSES": ",".join(nsq_settings.nsqd_tcp_addresses),
        "BULKOCR_NSQ_NSQD_HTTP_ADDRESS": nsq_settings.nsqd_http_address,
        "BULKOCR_NSQ_LOOKUPD_HTTP_ADDRESSES": ",".join(nsq_settings.lookupd_http_addresses),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bulkocr_autoscaler",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[dict[str, Any]] = []
    reading = asyncio.create_task(_read_json_lines(process, lines))
    try:
        await eventually(lambda: engine.replicas(NAME) == 3, what="3 replicas", timeout_s=30)
        (port,) = [line["port"] for line in lines if line["event"] == "ops_listening"]
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            exported = await response.text()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
        await reading
    assert process.returncode == 0, lines
    assert 'bulkocr_autoscaler_scale_actions_total{direction="up"} 1.0' in exported
    assert "bulkocr_autoscaler_backlog_pages 45.0" in exported
    events = [line["event"] for line in lines]
    assert {"service_started", "autoscale_decision", "autoscale_scaled", "service_stopped"} <= set(events), events
    assert all(line["service"] == "autoscaler" for line in lines if line["event"] == "autoscale_decision")


async def _read_json_lines(process: asyncio.subprocess.Process, lines: list[dict[str, Any]]) -> None:
    assert process.stdout is not None
    async for raw in process.stdout:
        text = raw.decode().strip()
        lines.append(json.loads(text) if text.startswith("{") else {"event": "text", "text": text})
