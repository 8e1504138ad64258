"""A client for the gateway's HTTP API, and the `bulkocr submit` command built on it.

Uploads stream from disk one chunk at a time (the gateway streams them on into the blob
store), so submitting a folder of large scans needs no more memory than one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

import aiohttp
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.contracts import FINISHED_STATUSES
from bulkocr.errors import BulkOcrError
from bulkocr.formats import OutputUnavailable, extension, format_name

FINISHED = frozenset(FINISHED_STATUSES)
PUSH_FINISHED = frozenset({"completed", "partial", "failed", "staged"})
DEFAULT_URL = "http://127.0.0.1:8080"

_CHUNK_BYTES = 256 * 1024
# Uploads may take long; only the connect is bounded. Other calls are quick.
_UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)
_CALL_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=30)

Status = dict[str, Any]


class ClientSettings(BaseSettings):
    """Where the gateway is and the token to show it (`BULKOCR_URL`, `BULKOCR_TOKEN`)."""

    model_config = SettingsConfigDict(env_prefix="BULKOCR_", extra="ignore")

    url: str = DEFAULT_URL
    token: str = Field(default="", repr=False)


class GatewayError(BulkOcrError):
    """The gateway refused a request or could not be reached; the message says which."""


@dataclass(frozen=True)
class Upload:
    path: Path
    name: str
    """The name the gateway records: the file's name, or its path below a submitted folder."""


def collect_files(paths: Sequence[Path]) -> list[Upload]:
    """The files to upload: each file as given, each folder's files (recursively, sorted,
    hidden ones left out) named by their path from the folder's own name down."""
    uploads: list[Upload] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            uploads.extend(Upload(p, p.relative_to(path.parent).as_posix()) for p in found)
        elif path.is_file():
            uploads.append(Upload(path, path.name))
        else:
            raise GatewayError(f"{path}: no such file or folder")
    if not uploads:
        raise GatewayError("no files to submit")
    return uploads


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


async def _file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    # Opened only when the upload reaches this file, so a big folder holds one file open.
    # Opened in this thread: an open in a worker thread whose upload is cancelled meanwhile
    # would leave a handle nobody closes.
    handle = path.open("rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


class GatewayClient:
    """The gateway's job API, authenticated with one owner's token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session = session
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def submit(self, uploads: Sequence[Upload], options: Mapping[str, str]) -> str:
        """Upload the files as one job with the given form options; return its job id."""
        form = aiohttp.FormData()
        files = [_file_chunks(upload.path) for upload in uploads]
        for upload, chunks in zip(uploads, files, strict=True):
            form.add_field("files", chunks, filename=upload.name, content_type="application/octet-stream")
        for name, value in options.items():
            form.add_field(name, value)
        url = f"{self._base}/api/bulk/jobs"
        try:
            async with self._session.post(url, data=form, headers=self._headers, timeout=_UPLOAD_TIMEOUT) as resp:
                body = await answer_json(resp, expect=202)
        finally:
            # A refused upload stops part way: close the file it was reading now, not at GC.
            for chunks in files:
                await chunks.aclose()
        return str(body["job_id"])

    async def status(self, job_id: str) -> Status:
        url = f"{self._base}/api/bulk/status/{job_id}"
        async with self._session.get(url, headers=self._headers, timeout=_CALL_TIMEOUT) as response:
            return await answer_json(response, expect=200)

    async def documents(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every document of the job, page by page (a job may hold thousands)."""
        url: str | None = f"/api/bulk/jobs/{job_id}/documents?page=1"
        while url is not None:
            async with self._session.get(
                f"{self._base}{url}", headers=self._headers, timeout=_CALL_TIMEOUT
            ) as response:
                body = await answer_json(response, expect=200)
            for document in body["documents"]:
                yield document
            url = body["next_url"]

    async def wait(self, job_id: str, on_change: Callable[[Status], None], *, poll_s: float = 1.0) -> Status:
        """Poll the job until it finishes, calling `on_change` whenever its progress moves."""

        def progress(status: Status) -> Status:
            return status

        def moved(status: Status) -> tuple[Any, ...]:
            p = status["progress"]
            return (status["status"], p["pages_done"], p["pages_failed"], p["pages_total"])

        return await self._follow(job_id, progress, moved, FINISHED, on_change, poll_s)

    async def push(self, job_id: str, options: Mapping[str, str | bool]) -> None:
        """Ask for the job to be pushed into Archipelago (queued; the status shows progress)."""
        url = f"{self._base}/api/archipelago/push-bulk-ami"
        body = {**options, "job_id": job_id}
        async with self._session.post(url, json=body, headers=self._headers, timeout=_CALL_TIMEOUT) as response:
            await answer_json(response, expect=202)

    async def wait_push(self, job_id: str, on_change: Callable[[Status], None], *, poll_s: float = 1.0) -> Status:
        """Poll the job's `archipelago_result` until the push ends, calling `on_change` as it moves."""

        def push(status: Status) -> Status:
            result: Status | None = status["archipelago_result"]
            if result is None:
                raise GatewayError(f"job {job_id} has no push to follow")
            return result

        def moved(result: Status) -> tuple[Any, ...]:
            counts = result["documents"]
            return (result["status"], counts["completed"], counts["failed"], counts["total"])

        return await self._follow(job_id, push, moved, PUSH_FINISHED, on_change, poll_s)

    async def _follow(
        self,
        job_id: str,
        part: Callable[[Status], Status],
        fingerprint: Callable[[Status], tuple[Any, ...]],
        finished: frozenset[str],
        on_change: Callable[[Status], None],
        poll_s: float,
    ) -> Status:
        """Poll the status, report `part` of it whenever its fingerprint moves, until it is finished."""
        last: tuple[Any, ...] | None = None
        while True:
            current = part(await self.status(job_id))
            if (seen := fingerprint(current)) != last:
                on_change(current)
                last = seen
            if current["status"] in finished:
                return current
            await asyncio.sleep(poll_s)

    async def download_text(self, job_id: str, doc_id: str, destination: Path) -> None:
        """Stream one document's plain text into `destination`."""
        await self.download(job_id, doc_id, "text", destination)

    async def download(self, job_id: str, doc_id: str, fmt: str, destination: Path) -> None:
        """Stream one document in one format (text, txt, json, pdf, hocr, alto, miniocr) into `destination`."""
        url = f"{self._base}/api/bulk/jobs/{job_id}/documents/{doc_id}/{fmt}"
        async with self._session.get(url, headers=self._headers, timeout=_UPLOAD_TIMEOUT) as response:
            if response.status != 200:
                await answer_json(response, expect=200)
            await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
            handle = await asyncio.to_thread(destination.open, "wb")
            try:
                async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)


async def answer_json(response: aiohttp.ClientResponse, *, expect: int) -> Status:
    """The JSON body of an expected answer; `GatewayError` with the gateway's reason otherwise."""
    if response.status != expect:
        try:
            reason = (await response.json())["error"]
        except (aiohttp.ContentTypeError, ValueError, KeyError, TypeError):
            reason = (await response.text())[:200] or response.reason
        raise GatewayError(f"the gateway answered {response.status}: {reason}")
    body: Status = await response.json()
    return body


@contextlib.asynccontextmanager
async def connect(url: str, token: str) -> AsyncIterator[GatewayClient]:
    if not token:
        raise GatewayError("no token: set BULKOCR_TOKEN to a token the gateway knows")
    async with aiohttp.ClientSession() as session:
        yield GatewayClient(session, url, token)


# --- `bulkocr submit` -----------------------------------------------------------------


@dataclass(frozen=True)
class SubmitRequest:
    paths: Sequence[Path]
    url: str
    token: str
    options: Mapping[str, str]
    wait: bool = False
    out: Path | None = None
    poll_s: float = 1.0


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


def _progress_line(status: Status) -> str:
    p = status["progress"]
    return f"{status['status']}: {p['pages_done']}/{p['pages_total']} pages done, {p['pages_failed']} failed"


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
        uploads = collect_files(request.paths)
        async with connect(request.url, request.token) as client:
            job_id = await client.submit(uploads, request.options)
            print(job_id, file=out, flush=True)
            if not request.wait:
                return 0
            final = await client.wait(
                job_id, lambda status: print(_progress_line(status), file=out, flush=True), poll_s=request.poll_s
            )
            folder = request.out or Path("bulkocr-output") / job_id
            await _write_texts(client, final, folder, out)
    except (GatewayError, aiohttp.ClientError, TimeoutError, OSError) as error:  # OSError: a file or folder
        return could_not(error, request.url, err)
    return 0 if final["status"] == "completed" else 1


def could_not(error: BaseException, url: str, err: TextIO) -> int:
    """Say why a command could not be carried out; its exit code, 2."""
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        reason = f"cannot reach the gateway at {url}: {str(error) or type(error).__name__}"
    else:
        reason = str(error)
    print(f"bulkocr: {reason}", file=err)
    return 2


# --- `bulkocr push` -------------------------------------------------------------------


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


# --- `bulkocr results` ------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsRequest:
    job_id: str
    url: str
    token: str
    formats: Sequence[str]
    out: Path


async def results_command(request: ResultsRequest, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Download every readable document of a job in each format into `out`; 0 when all came."""
    try:
        for fmt in request.formats:
            format_name(fmt)
    except OutputUnavailable as error:
        print(f"bulkocr results: {error}", file=err)
        return 2
    try:
        async with connect(request.url, request.token) as gateway:
            status = await gateway.status(request.job_id)
            written = await _download_all(gateway, status, request, out)
    except (GatewayError, aiohttp.ClientError, OSError) as error:
        print(f"bulkocr results: {error}", file=err)
        return 2
    print(f"{written} files written to {request.out}", file=out)
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
