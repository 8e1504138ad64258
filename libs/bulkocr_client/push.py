"""`bulkocr push`: queue a finished job's push into Archipelago; with `--wait`, follow it and
print every object's link."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import aiohttp

from bulkocr_client.client import GatewayError, Status, connect, could_not


@dataclass(frozen=True)
class PushRequest:
    job_id: str
    url: str
    token: str
    options: Mapping[str, str | bool]
    wait: bool = False
    poll_s: float = 1.0


def _push_line(result: Status) -> str:
    counts = result["documents"]
    line = f"{result['status']}: {counts['completed']}/{counts['total']} documents pushed, {counts['failed']} failed"
    return f"{line} ({result['last_error']})" if result.get("last_error") else line


def _print_links(result: Status, out: TextIO) -> None:
    for name in ("collection", "ami_set"):
        if result.get(name):
            print(f"{name.replace('_', ' ')}: {result[name]['url']}", file=out)
    for entry in result["objects"]:
        note = f" ({entry['error']})" if entry.get("error") else ""
        print(f"{entry['doc_id']} {entry['state']}: {entry['url']}{note}", file=out)


async def push_command(request: PushRequest, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Queue a push into Archipelago; with `wait`, follow it and print every object's link.
    Exit code: 0 queued (or pushed, or staged), 1 partial or failed, 2 when the request could not be made."""
    try:
        async with connect(request.url, request.token) as client:
            await client.push(request.job_id, request.options)
            print(f"push of job {request.job_id} queued", file=out, flush=True)
            if not request.wait:
                return 0
            show = functools.partial(_print_line, out=out)
            result = await client.wait_push(request.job_id, show, poll_s=request.poll_s)
    except (GatewayError, aiohttp.ClientError, TimeoutError) as error:
        return could_not(error, request.url, err)
    _print_links(result, out)
    return 0 if result["status"] in ("completed", "staged") else 1


def _print_line(result: Status, *, out: TextIO) -> None:
    print(_push_line(result), file=out, flush=True)
