"""`bulkocr submit`: upload files, folders and globs as one job, with a bar for the upload;
with `--wait`, follow the job to its end and save each document's text."""

from __future__ import annotations

import glob
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from bulkocr_client.client import GatewayClient, GatewayError, Status, collect_files, connect, could_not
from bulkocr_client.watch import follow


@dataclass(frozen=True)
class SubmitRequest:
    paths: Sequence[Path]
    url: str
    token: str
    options: Mapping[str, str]
    wait: bool = False
    out: Path | None = None
    poll_s: float = 1.0
    # While the job's events say nothing for this long, its status is read (watch.py).
    quiet_check_s: float = 10.0
    as_json: bool = False
    show_progress: bool = True


def expand_globs(paths: Sequence[Path]) -> list[Path]:
    """Each path as given, or, when it does not exist and holds a wildcard, what it matches
    (sorted): `bulkocr submit 'scans/**/*.tif'` works without the shell's help."""
    found: list[Path] = []
    for path in paths:
        if not path.exists() and glob.has_magic(str(path)):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise GatewayError(f"{path}: matches no file")
            found.extend(Path(match) for match in matches)
        else:
            found.append(path)
    return found


def output_path(folder: Path, filename: str, doc_id: str, taken: set[Path]) -> Path:
    """Where a document's text goes: `<filename>.txt` under `folder` (never outside it),
    with the document id added when two documents share a name."""
    parts = [part for part in PurePosixPath(filename.replace("\\", "/")).parts if part not in ("/", ".", "..")]
    name = "/".join(parts) or doc_id
    path = folder / f"{name}.txt"
    if path in taken:
        path = folder / f"{name}.{doc_id}.txt"
    taken.add(path)
    return path


async def _write_texts(client: GatewayClient, status: Status, folder: Path, out: TextIO) -> None:
    taken: set[Path] = set()
    async for document in client.documents(status["job_id"]):
        if not document["pages"]:
            # Unreadable, or an archive whose pages belong to its member documents.
            if document["error"]:
                print(f"skipped {document['filename']}: {document['error']}", file=out)
            continue
        path = output_path(folder, document["filename"] or document["doc_id"], document["doc_id"], taken)
        await client.download_text(status["job_id"], document["doc_id"], path)
    print(f"texts written to {folder}", file=out)


async def submit_command(request: SubmitRequest, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Submit, and with `wait` follow the job and save its texts. Exit code: 0 completed,
    1 partial, failed or cancelled, 2 when the request could not be made."""
    try:
        uploads = collect_files(expand_globs(request.paths))
        total = sum(upload.path.stat().st_size for upload in uploads)
        async with connect(request.url, request.token) as client:
            bar = Progress(
                TextColumn(f"uploading {len(uploads)} files"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=err),
                disable=not request.show_progress or request.as_json,
                transient=True,
            )
            with bar:
                task = bar.add_task("upload", total=total)
                job_id = await client.submit(uploads, request.options, lambda sent: bar.advance(task, sent))
            print(job_id, file=out, flush=True)
            if not request.wait:
                return 0
            final = await follow(
                client, job_id, out, as_json=request.as_json, poll_s=request.poll_s, quiet_check_s=request.quiet_check_s
            )
            folder = request.out or Path("bulkocr-output") / job_id
            await _write_texts(client, final, folder, err if request.as_json else out)
    except (GatewayError, aiohttp.ClientError, TimeoutError, OSError) as error:  # OSError: a file or folder
        return could_not(error, request.url, err)
    return 0 if final["status"] == "completed" else 1
