"""Following a job to its end, as `bulkocr watch` and `submit --wait` do: from the job's live
events (server-sent events), with a progress bar for the job and one per node and the time
left on a terminal, a line per change otherwise; or, with `--json`, one JSON line per event
for scripts. A stream that breaks is resumed from the last event; a gateway without events is
polled instead, and a quiet stream is checked against the job's status now and then, so a
lost event never leaves the command waiting for ever."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, TextIO

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from bulkocr_client.client import FINISHED, GatewayClient, GatewayError, Status

RECONNECTS = 5
"""Broken streams resumed in a row before following by polling."""
QUIET_CHECK_S = 10.0
"""How often the job's status is read while its stream says nothing."""


class Bars:
    """The job's bar (pages with an outcome of all its pages) and one per node (its pages done)."""

    def __init__(self, job_id: str, out: TextIO) -> None:
        console = Console(file=out)
        self.out, self.live = out, console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self.job = self.progress.add_task(f"job {job_id[:12]}", total=None)
        self.nodes: dict[str, TaskID] = {}
        self.last_line = ""

    def show(self, progress: Status, nodes: dict[str, Any], status: str) -> None:
        if not self.live:  # a pipe or a file: a line whenever the counts move
            line = f"{status}: {progress['pages_done']}/{progress['pages_total']} pages done, "
            line += f"{progress['pages_failed']} failed"
            if line != self.last_line:
                print(line, file=self.out, flush=True)
                self.last_line = line
            return
        total = progress["pages_total"] or None
        finished = progress["pages_done"] + progress["pages_failed"]
        failed = f", {progress['pages_failed']} failed" if progress["pages_failed"] else ""
        self.progress.update(self.job, total=total, completed=finished, description=f"{status}{failed}")
        for node, tally in sorted(nodes.items()):
            if node not in self.nodes:
                self.nodes[node] = self.progress.add_task(f"  {node}", total=total)
            self.progress.update(self.nodes[node], total=total, completed=tally["pages_done"])


def _progress_of(name: str, data: Status) -> tuple[Status, dict[str, Any], str] | None:
    if name == "snapshot":
        return data["progress"], data.get("nodes") or {}, data["status"]
    if name == "progress":
        return data, data.get("nodes") or {}, data["status"]
    return None


async def follow(
    client: GatewayClient,
    job_id: str,
    out: TextIO,
    *,
    as_json: bool = False,
    poll_s: float = 2.0,
    quiet_check_s: float = QUIET_CHECK_S,
) -> Status:
    """Follow the job until it has ended; its final status."""
    bars = None if as_json else Bars(job_id, out)
    if bars is not None:
        bars.progress.start()
    try:
        if await _follow_events(client, job_id, out, bars, quiet_check_s):
            return await client.status(job_id)
        return await _follow_polling(client, job_id, out, bars, poll_s)
    finally:
        if bars is not None:
            bars.progress.stop()


async def _follow_events(
    client: GatewayClient, job_id: str, out: TextIO, bars: Bars | None, quiet_check_s: float
) -> bool:
    """True once the job's end was seen; False if the events could not be followed."""
    streaming = asyncio.create_task(_stream(client, job_id, out, bars))
    try:
        while True:
            done, _ = await asyncio.wait({streaming}, timeout=quiet_check_s)
            if done:
                return streaming.result()
            # Quiet for a while: what the events may have missed (lost with nsqd, say).
            status = await client.status(job_id)
            if bars is not None:
                bars.show(status["progress"], status.get("nodes") or {}, status["status"])
            if status["status"] in FINISHED:
                return True
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming


async def _stream(client: GatewayClient, job_id: str, out: TextIO, bars: Bars | None) -> bool:
    last_id: str | None = None
    for _ in range(RECONNECTS):
        try:
            async for event_id, name, data in client.events(job_id, last_id):
                last_id = event_id or last_id
                if bars is None:
                    print(json.dumps({"event": name, "id": event_id, "data": data}), file=out, flush=True)
                elif (shown := _progress_of(name, data)) is not None:
                    bars.show(*shown)
                if name == "job" or (name == "snapshot" and data["status"] in FINISHED):
                    return True
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError):
            continue  # resumed from the last event
        except GatewayError:
            return False  # a gateway without the events route
    return False


async def _follow_polling(client: GatewayClient, job_id: str, out: TextIO, bars: Bars | None, poll_s: float) -> Status:
    def show(status: Status) -> None:
        if bars is None:
            print(json.dumps({"event": "status", "data": status}), file=out, flush=True)
        else:
            bars.show(status["progress"], status.get("nodes") or {}, status["status"])

    return await client.wait(job_id, show, poll_s=poll_s)
