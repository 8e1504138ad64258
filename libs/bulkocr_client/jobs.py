"""`bulkocr status|jobs|watch|cancel|retry-failed|nodes`: a job and the cluster as people read
them, or as the gateway's JSON with `--json` (for scripts)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

import aiohttp

from bulkocr_client.client import GatewayClient, GatewayError, Status, connect, could_not
from bulkocr_client.watch import follow


@dataclass(frozen=True)
class Gateway:
    url: str
    token: str
    as_json: bool = False


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f", about {minutes} min {secs} s left" if minutes else f", about {secs} s left"


def show_status(status: Status, out: TextIO) -> None:
    p = status["progress"]
    print(
        f"{status['job_id']} {status['status']}: {p['pages_done']} of {p['pages_total']} pages done, "
        f"{p['pages_failed']} failed ({p['percent']:.0f} %){_eta(status.get('eta_seconds'))}",
        file=out,
    )
    counts = ", ".join(f"{n} {name}" for name, n in sorted(status["documents_by_status"].items()) if n)
    print(f"documents: {status['documents_total']} ({counts})", file=out)
    for document in status["failed_documents"]:
        print(f"  failed {document['filename'] or document['doc_id']}: {document['error']}", file=out)
    for node, tally in sorted(status["nodes"].items()):
        print(f"  node {node}: {tally['pages_done']} done, {tally['pages_failed']} failed", file=out)


def show_jobs(listing: Status, out: TextIO) -> None:
    for job in listing["jobs"]:
        p = job["progress"]
        print(
            f"{job['job_id']}  {job['created_at']}  {job['status']:<10} {p['pages_done']}/{p['pages_total']}", file=out
        )
    print(f"page {listing['page']}, {listing['total']} jobs in all", file=out)


def show_nodes(listing: Status, out: TextIO) -> None:
    for node in listing["nodes"]:
        print(
            f"{node['node_id']}: {node['pages_done']} done, {node['pages_failed']} failed, "
            f"{node['in_flight']} in flight, last seen {node['last_seen']}",
            file=out,
        )


async def run(
    gateway: Gateway,
    call: Callable[[GatewayClient], Awaitable[Status]],
    show: Callable[[Status, TextIO], None],
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """One request, its answer shown (or printed as JSON). 0, or 2 when it could not be made."""
    try:
        async with connect(gateway.url, gateway.token) as client:
            answer = await call(client)
    except (GatewayError, aiohttp.ClientError, TimeoutError) as error:
        return could_not(error, gateway.url, err)
    if gateway.as_json:
        print(json.dumps(answer, indent=2), file=out)
    else:
        show(answer, out)
    return 0


async def watch_command(gateway: Gateway, job_id: str, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Follow a job to its end: 0 completed, 1 partial, failed or cancelled, 2 unreachable."""
    try:
        async with connect(gateway.url, gateway.token) as client:
            final = await follow(client, job_id, out, as_json=gateway.as_json)
    except (GatewayError, aiohttp.ClientError, TimeoutError) as error:
        return could_not(error, gateway.url, err)
    if not gateway.as_json:
        show_status(final, out)
    return 0 if final["status"] == "completed" else 1
