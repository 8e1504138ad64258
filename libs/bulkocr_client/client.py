"""A client for the gateway's HTTP API, which the `bulkocr` commands are built on.

Uploads stream from disk one chunk at a time (the gateway streams them on into the blob
store), so submitting a folder of large scans needs no more memory than one chunk. A job's
live events are read from its server-sent events stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bulkocr.contracts import FINISHED_STATUSES
from bulkocr.errors import BulkOcrError

FINISHED = frozenset(FINISHED_STATUSES)
PUSH_FINISHED = frozenset({"completed", "partial", "failed", "staged"})
DEFAULT_URL = "http://127.0.0.1:8080"

_CHUNK_BYTES = 256 * 1024
# Uploads may take long; only the connect is bounded. Other calls are quick.
_UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30)
_CALL_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=30)
# An event stream is quiet between events; the gateway sends a keep-alive every 15 s.
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)

Status = dict[str, Any]


def config_file() -> Path:
    """`BULKOCR_CONFIG`, or ~/.config/bulkocr/config.toml."""
    return Path(os.environ.get("BULKOCR_CONFIG") or Path.home() / ".config" / "bulkocr" / "config.toml")


class ClientSettings(BaseSettings):
    """Where the gateway is and the token to show it: `BULKOCR_URL` and `BULKOCR_TOKEN`, or
    `url` and `token` in the config file (`config_file()`); the environment wins."""

    model_config = SettingsConfigDict(env_prefix="BULKOCR_", extra="ignore")

    url: str = DEFAULT_URL
    token: str = Field(default="", repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file())


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


async def _file_chunks(path: Path, on_sent: Callable[[int], None]) -> AsyncGenerator[bytes, None]:
    # Opened only when the upload reaches this file, so a big folder holds one file open.
    # Opened in this thread: an open in a worker thread whose upload is cancelled meanwhile
    # would leave a handle nobody closes.
    handle = path.open("rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, _CHUNK_BYTES):
            yield chunk
            on_sent(len(chunk))
    finally:
        handle.close()


class GatewayClient:
    """The gateway's job API, authenticated with one owner's token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session = session
        self._base = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    async def submit(
        self, uploads: Sequence[Upload], options: Mapping[str, str], on_sent: Callable[[int], None] = lambda n: None
    ) -> str:
        """Upload the files as one job with the given form options (`on_sent` hears each chunk
        go out); return its job id."""
        form = aiohttp.FormData()
        files = [_file_chunks(upload.path, on_sent) for upload in uploads]
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
        return await self.get(f"/api/bulk/status/{job_id}")

    async def get(self, path: str) -> Status:
        """A JSON answer of the gateway (`path` from the root, query included)."""
        async with self._session.get(f"{self._base}{path}", headers=self._headers, timeout=_CALL_TIMEOUT) as response:
            return await answer_json(response, expect=200)

    async def control(self, job_id: str, action: str) -> Status:
        """`cancel` or `retry-failed` a job: the gateway asks the aggregator and answers 202."""
        url = f"{self._base}/api/bulk/jobs/{job_id}/{action}"
        async with self._session.post(url, headers=self._headers, timeout=_CALL_TIMEOUT) as response:
            return await answer_json(response, expect=202)

    async def events(self, job_id: str, last_event_id: str | None = None) -> AsyncIterator[tuple[str, str, Status]]:
        """The job's live events as (id, name, data), from the first (a snapshot, unless the
        gateway still holds `last_event_id`) until the caller stops or the stream breaks."""
        headers = {**self._headers, "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = f"{self._base}/api/bulk/jobs/{job_id}/events"
        async with self._session.get(url, headers=headers, timeout=_STREAM_TIMEOUT) as response:
            if response.status != 200:
                await answer_json(response, expect=200)
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    continue  # a keep-alive
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                elif "data" in fields:
                    yield fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
                    fields = {}

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


def could_not(error: BaseException, url: str, err: TextIO) -> int:
    """Say why a command could not be carried out; its exit code, 2."""
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        reason = f"cannot reach the gateway at {url}: {str(error) or type(error).__name__}"
    else:
        reason = str(error)
    print(f"bulkocr: {reason}", file=err)
    return 2
