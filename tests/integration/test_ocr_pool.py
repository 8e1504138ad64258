"""OCR pool processes never outlive their worker, even one killed with SIGKILL, and a page
that outlasts its deadline gets its process killed and replaced."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from PIL import Image

from bulkocr_ocr_worker.pool import OcrPool, OcrTimedOut
from tests.waiting import eventually

# A worker's pool with a slow engine, so pages go to pool processes; prints their pids.
WORKER = """
import asyncio, io, sys
from PIL import Image
from bulkocr_ocr_worker.pool import OcrPool

async def main():
    pool = OcrPool(2, {"null": {"seconds_per_page": 0.01}}, preload="")
    buffer = io.BytesIO()
    Image.new("L", (20, 20), 255).save(buffer, format="PNG")
    await asyncio.gather(*(pool.read(buffer.getvalue(), engine="null", language=None, dpi=300) for _ in range(4)))
    print(" ".join(map(str, pool.pids())), flush=True)
    sys.stdin.readline()  # lives until the test is done with it (or kills it)

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()  # a zombie has exited
    except FileNotFoundError:
        return False


async def test_pool_processes_die_with_a_worker_killed_by_sigkill():
    """SIGKILL gives the worker no chance to stop its pool; its pool processes go anyway."""
    command = [sys.executable, "-c", WORKER]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as worker:
        try:
            assert worker.stdout is not None
            pids = [int(pid) for pid in worker.stdout.readline().split()]
            assert pids
            assert all(alive(pid) for pid in pids)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            await eventually(lambda: not any(alive(pid) for pid in pids), what="the pool processes to exit")
        finally:
            worker.kill()


async def test_a_page_over_its_deadline_kills_its_process_and_the_pool_serves_on():
    """A page that takes longer than the deadline fails with OcrTimedOut (retried through NSQ);
    the page another process was reading comes back as OcrProcessDied (retried too); the old
    processes are gone, and the next page is taken by a new process (and, as slow, timed out)."""
    pool = OcrPool(2, {"null": {"seconds_per_page": 30}}, preload="", page_timeout_s=1.0)
    try:
        buffer = io.BytesIO()
        Image.new("L", (20, 20), 255).save(buffer, format="PNG")
        png = buffer.getvalue()
        reading = asyncio.gather(
            *(pool.read(png, engine="null", language=None, dpi=300) for _ in range(2)), return_exceptions=True
        )
        await eventually(lambda: len(pool.pids()) == 2, what="both pool processes")
        old = pool.pids()
        outcomes = sorted(type(outcome).__name__ for outcome in await reading)
        assert outcomes in (["OcrTimedOut", "OcrTimedOut"], ["OcrProcessDied", "OcrTimedOut"])
        await eventually(lambda: not any(alive(pid) for pid in old), what="the old processes to be killed")
        with pytest.raises(OcrTimedOut, match="took longer than 1 s: its OCR process was killed"):
            await pool.read(png, engine="null", language=None, dpi=300)
    finally:
        pool.close()


async def test_a_started_pool_has_every_process_running_its_engine_before_the_first_page():
    """`start()` returns once each process has built its engine and read a page with it, so
    the worker takes pages only when it can read them at once."""
    pool = OcrPool(3, {"null": {"seconds_per_page": 0.01}}, preload="null")
    try:
        assert pool.pids() == []  # processes start with the first page unless started
        await pool.start()
        assert len(pool.pids()) == 3
        assert all(alive(pid) for pid in pool.pids())
    finally:
        pool.close()


async def test_a_pool_whose_engine_cannot_load_fails_to_start():
    """A worker whose engine cannot be built stops at start (the process logs the engine's
    error), instead of taking pages and failing each of them."""
    pool = OcrPool(2, {}, preload="paddle")  # the paddle engine without its model folders
    try:
        with pytest.raises(BrokenProcessPool):
            await pool.start()
    finally:
        pool.close()
