"""`bulkocr up --detach` and `bulkocr down` as a user runs them, on loopback: `down` leaves no
process of the stack behind, even after a worker was killed with SIGKILL (as the kernel's OOM
killer or `kill -9` would) while its OCR processes and ingest's split processes ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bulkocr_devstack.servers import free_port
from tests.e2e import client
from tests.ocr_quality import TEST_DATA
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

TOKEN = "cli-stack-token"
BULKOCR = Path(sys.executable).parent / "bulkocr"


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children...) that is still there."""
    found: set[int] = set()
    with_children = [pid]
    while with_children:
        parent = with_children.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
            found.update(children)
            with_children.extend(children)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def bulkocr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BULKOCR), *args], env=env, capture_output=True, text=True, timeout=180, check=False)


async def test_down_leaves_no_process_behind_after_a_worker_was_killed(tmp_path):
    """Up, a job read by the null engine in OCR processes (slowed, so it is not run inline),
    a worker SIGKILLed, then down: none of the processes the stack ever had is left running."""
    state = str(tmp_path / "state")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("BULKOCR_")}
    env |= {
        "BULKOCR_SECRETS_DIR": "/nonexistent",
        "BULKOCR_API_TOKENS": f"archivist:{TOKEN}",
        "BULKOCR_ENGINE": "null",
        "BULKOCR_NULL_SECONDS_PER_PAGE": "0.01",
    }
    started = bulkocr("up", "--detach", "--workers", "2", "--port", str(port), "--state-dir", state, env=env)
    assert started.returncode == 0, started.stderr
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            gateway = f"http://127.0.0.1:{port}"
            job_id = await client.submit(http, gateway, {"cardinal.pdf": (TEST_DATA / "cardinal.pdf").read_bytes()})
            final = await client.wait_finished(http, gateway, job_id, timeout_s=60)
        assert final["status"] == "completed", final
        pids = json.loads((Path(state) / "state.json").read_text())
        services = {name: int(pid) for name, pid in pids["services"].items()}
        everything = {*services.values(), *map(int, pids["servers"].values())}
        children = {name: descendants(pid) for name, pid in services.items()}
        everything |= {child for found in children.values() for child in found}
        assert children["ingest"], "ingest's split processes should be running"
        assert children["ocr-worker-1"], "the worker's OCR processes should be running"
        os.kill(services["ocr-worker-1"], signal.SIGKILL)
    finally:
        stopped = bulkocr("down", "--state-dir", state, env=env)
    assert stopped.returncode == 0, stopped.stderr
    await eventually(lambda: not [pid for pid in everything if running(pid)], what="every process to be gone")
