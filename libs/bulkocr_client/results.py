"""`bulkocr results`: download a job's documents in the chosen formats. A job still running
is waited for (its progress shown on stderr), unless `--partial` asks for what is done now;
`--no-wait` refuses instead (exit 1), saying how far the job is."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp

from bulkocr.formats import OutputUnavailable, extension, format_name
from bulkocr_client.client import FINISHED, GatewayClient, GatewayError, Status, connect
from bulkocr_client.submit import output_path
from bulkocr_client.watch import follow


@dataclass(frozen=True)
class ResultsRequest:
    job_id: str
    url: str
    token: str
    formats: Sequence[str]
    out: Path
    partial: bool = False
    wait: bool = True


def _running(status: Status) -> str:
    p = status["progress"]
    return f"job {status['job_id']} is still {status['status']} ({p['pages_done']} of {p['pages_total']} pages done)"


async def results_command(request: ResultsRequest, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Download every readable document of a job in each format into `out`. Exit code: 0
    when the job completed and all came, 1 otherwise, 2 when the request could not be made."""
    try:
        for fmt in request.formats:
            format_name(fmt)
    except OutputUnavailable as error:
        print(f"bulkocr results: {error}", file=err)
        return 2
    try:
        async with connect(request.url, request.token) as gateway:
            status = await gateway.status(request.job_id)
            if status["status"] not in FINISHED and not request.partial:
                if not request.wait:
                    print(f"bulkocr results: {_running(status)}; --partial writes what is done now", file=err)
                    return 1
                print(f"{_running(status)}: waiting for it (--partial writes what is done now)", file=err)
                status = await follow(gateway, request.job_id, err)
            written = await _download_all(gateway, status, request, out)
    except (GatewayError, aiohttp.ClientError, OSError) as error:
        print(f"bulkocr results: {error}", file=err)
        return 2
    note = "" if status["status"] in FINISHED else f" (partial: {_running(status)})"
    print(f"{written} files written to {request.out}{note}", file=out)
    return 0 if status["status"] == "completed" else 1


async def _download_all(gateway: GatewayClient, status: Status, request: ResultsRequest, out: TextIO) -> int:
    written = 0
    taken: dict[str, set[Path]] = {fmt: set() for fmt in request.formats}
    async for document in gateway.documents(request.job_id):
        if not document["pages"]:
            if document["error"]:
                print(f"skipped {document['filename']}: {document['error']}", file=out)
            continue
        for fmt in request.formats:
            name = document["filename"] or document["doc_id"]
            path = output_path(request.out, name, document["doc_id"], taken[fmt])
            destination = path.with_name(path.name.removesuffix(".txt") + extension(fmt))
            await gateway.download(request.job_id, document["doc_id"], fmt, destination)
            written += 1
    return written
