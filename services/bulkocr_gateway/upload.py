"""Receiving a job's files: each multipart part is streamed into the blob store, hashed and
counted on the way, so neither a file nor the batch is ever held in memory."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import BadHttpMessage

from bulkocr.blobs import BlobStore
from bulkocr.contracts import DocumentRef, document_id
from bulkocr_gateway.options import OPTION_FIELDS, InvalidOptions, checked_languages
from bulkocr_gateway.settings import GatewaySettings

T = TypeVar("T")

FILES_FIELD = "files"
_DRIVE = re.compile(r"[A-Za-z]:")
# Room for the longest callback_url (2,000 characters); each option checks its own value.
_MAX_FIELD_BYTES = 4096


class UploadRejected(Exception):
    """The request cannot become a job; `status` is the 4xx to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def upload_key(job_id: str, doc_id: str) -> str:
    return f"jobs/{job_id}/uploads/{doc_id}"


def job_blob_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def clean_filename(raw: str | None, fallback: str) -> str:
    """The client's name as a relative POSIX path: no drive, no `..`, no leading slash.

    Percent escapes are decoded: aiohttp's client escapes every filename, and browsers
    escape quotes and line breaks (WHATWG form encoding)."""
    parts = [part for part in unquote(raw or "").replace("\\", "/").split("/") if part not in ("", ".", "..")]
    if parts and _DRIVE.fullmatch(parts[0]):
        parts = parts[1:]
    return "/".join(parts) or fallback


@dataclass
class UploadLimit:
    """Bytes one upload may bring, across every part, and what to say when it brings more."""

    limit: int
    refusal: str


class _Budget:
    def __init__(self, limit: UploadLimit) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit.limit:
            raise UploadRejected(413, self.limit.refusal)


@dataclass
class ReceivedForm:
    documents: list[DocumentRef] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Receiver:
    job_id: str
    blobs: BlobStore
    settings: GatewaySettings
    budget: _Budget
    form: ReceivedForm = field(default_factory=ReceivedForm)
    # The first document of the job with each content hash: later copies are its duplicates.
    first_with_hash: dict[str, str] = field(default_factory=dict)

    async def within_idle_timeout(self, read: Awaitable[T]) -> T:
        """One read of the body, given up when the client sends nothing for the idle timeout:
        a client that stalls must not hold a connection and an upload open for ever."""
        seconds = self.settings.body_idle_timeout_s
        try:
            async with asyncio.timeout(seconds):
                return await read
        except TimeoutError:
            raise UploadRejected(408, f"the upload stalled: nothing arrived for {seconds:g} s") from None

    async def part(self, part: BodyPartReader) -> None:
        if part.name == FILES_FIELD:
            if len(self.form.documents) >= self.settings.max_files_per_job:
                raise UploadRejected(400, f"too many files: at most {self.settings.max_files_per_job} per job")
            self.form.documents.append(await self._store_file(part))
        elif part.name in OPTION_FIELDS:
            self.form.fields[part.name] = await self._read_field(part)
        else:
            raise UploadRejected(400, f"unknown form field {part.name!r}")

    async def _store_file(self, part: BodyPartReader) -> DocumentRef:
        doc_id = document_id(len(self.form.documents) + 1)
        filename = clean_filename(part.filename, doc_id)
        if len(filename) > self.settings.max_filename_chars:
            raise UploadRejected(
                400,
                f"file name too long: {filename[:40]}... has {len(filename)} characters,"
                f" the limit is {self.settings.max_filename_chars}",
            )
        digest = hashlib.sha256()

        async def chunks() -> AsyncIterator[bytes]:
            # Hashing a chunk of a few hundred KiB takes well under a millisecond: no executor needed.
            while chunk := await self.within_idle_timeout(part.read_chunk(self.settings.upload_chunk_bytes)):
                self.budget.take(len(chunk))
                digest.update(chunk)
                yield chunk

        language = _part_language(part, filename)
        key = upload_key(self.job_id, doc_id)
        size = await self.blobs.put(key, chunks())
        sha256 = digest.hexdigest()
        duplicate_of = self.first_with_hash.setdefault(sha256, doc_id)
        return DocumentRef(
            doc_id=doc_id,
            filename=filename,
            blob=key,
            size=size,
            sha256=sha256,
            duplicate_of=duplicate_of if duplicate_of != doc_id else None,
            language=language,
        )

    async def _read_field(self, part: BodyPartReader) -> str:
        value = b""
        while chunk := await self.within_idle_timeout(part.read_chunk(_MAX_FIELD_BYTES)):
            self.budget.take(len(chunk))
            value += chunk
            if len(value) > _MAX_FIELD_BYTES:
                raise UploadRejected(400, f"form field {part.name!r} is longer than {_MAX_FIELD_BYTES} bytes")
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise UploadRejected(400, f"form field {part.name!r} is not UTF-8") from None


def _part_language(part: BodyPartReader, filename: str) -> str | None:
    """A file part's own languages, from its Content-Language header (ISO 639-3 codes, as the
    job's `language` field): a collection of mixed languages names each document's."""
    try:
        return checked_languages(part.headers.get(hdrs.CONTENT_LANGUAGE))
    except InvalidOptions as invalid:
        raise UploadRejected(400, f"{filename}: {invalid}") from None


async def receive_form(
    request: web.Request, *, job_id: str, blobs: BlobStore, settings: GatewaySettings, limit: UploadLimit
) -> ReceivedForm:
    """Store every `files` part under the job's upload keys and collect the option fields.

    Raises `UploadRejected`; blobs already stored are the caller's to delete."""
    if request.content_type != "multipart/form-data":
        raise UploadRejected(400, "expected a multipart/form-data body with one or more 'files' parts")
    receiver = _Receiver(job_id, blobs, settings, _Budget(limit))
    try:
        reader = await request.multipart()
        while (part := await receiver.within_idle_timeout(reader.next())) is not None:
            if not isinstance(part, BodyPartReader):
                raise UploadRejected(400, "nested multipart parts are not supported")
            await receiver.part(part)
    except (ValueError, BadHttpMessage) as error:  # a malformed multipart body (LineTooLong: a header over 8 KiB)
        raise UploadRejected(400, f"malformed multipart body: {error}") from None
    return receiver.form
