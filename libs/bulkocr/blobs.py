"""Where uploads, page images and large results live, addressed by string keys.

GridFS is the default: it is in the database every service already reaches, so Swarm
nodes need no shared volume. A directory works for one host. Both stream in chunks, so
a large upload never sits in memory whole, and both make `put` idempotent: putting a key
again replaces its content.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile

from bulkocr.errors import BlobNotFound
from bulkocr.mongo import Database
from bulkocr.settings import BlobSettings

Chunks = AsyncIterable[bytes]


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes | Chunks) -> int:
        """Store `data` under `key` (replacing any earlier content); return its size."""
        ...

    async def put_many(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        """Store several small blobs (a batch of page images) in one go."""
        ...

    async def get(self, key: str) -> bytes: ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The content in chunks; raises `BlobNotFound` on first iteration if missing."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; return how many."""
        ...


def validate_key(key: str) -> str:
    """Keys are relative POSIX paths without `..`, so a directory store cannot escape its root."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key != str(path):
        raise ValueError(f"invalid blob key {key!r}")
    return key


async def _chunks_of(data: bytes | Chunks, size: int) -> AsyncIterator[bytes]:
    if isinstance(data, bytes):
        for start in range(0, len(data), size):
            yield data[start : start + size]
        return
    async for chunk in data:
        yield chunk


class GridFsBlobStore:
    def __init__(self, db: Database, settings: BlobSettings) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=settings.gridfs_bucket, chunk_size_bytes=settings.chunk_bytes)
        self._files = db[f"{settings.gridfs_bucket}.files"]
        self._chunk_bytes = settings.chunk_bytes

    async def put(self, key: str, data: bytes | Chunks) -> int:
        validate_key(key)
        # Upload under a fresh id, then drop older copies: a reader never sees a half blob.
        file_id = f"{key}#{uuid.uuid4().hex}"
        stream = self._bucket.open_upload_stream_with_id(file_id, key)
        size = 0
        try:
            async for chunk in _chunks_of(data, self._chunk_bytes):
                await stream.write(chunk)
                size += len(chunk)
        except BaseException:
            await stream.abort()
            raise
        await stream.close()
        async for old in self._files.find({"filename": key, "_id": {"$ne": file_id}}, {"_id": 1}):
            await self._delete_id(old["_id"])
        return size

    async def put_many(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        await asyncio.gather(*(self.put(key, data) for key, data in blobs))

    async def get(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key)])

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        try:
            grid_out = await self._bucket.open_download_stream_by_name(validate_key(key))
        except NoFile:
            raise BlobNotFound(key) from None
        while chunk := await grid_out.readchunk():
            yield chunk

    async def exists(self, key: str) -> bool:
        return await self._files.find_one({"filename": validate_key(key)}, {"_id": 1}) is not None

    async def delete_prefix(self, prefix: str) -> int:
        ids = [
            doc["_id"]
            async for doc in self._files.find({"filename": {"$regex": f"^{_regex_literal(prefix)}"}}, {"_id": 1})
        ]
        for file_id in ids:
            await self._delete_id(file_id)
        return len(ids)

    async def _delete_id(self, file_id: object) -> None:
        with contextlib.suppress(NoFile):  # deleted concurrently: the goal is reached
            await self._bucket.delete(file_id)


def _regex_literal(text: str) -> str:
    return "".join(f"\\{char}" if not char.isalnum() else char for char in text)


class DirectoryBlobStore:
    """Blobs as files under one root; writes go to a temporary file renamed into place."""

    def __init__(self, settings: BlobSettings) -> None:
        self._root = settings.directory.resolve()
        self._chunk_bytes = settings.chunk_bytes

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    async def put(self, key: str, data: bytes | Chunks) -> int:
        path = self._path(key)
        if isinstance(data, bytes):
            # One trip to a thread for a page image, not one per file operation.
            await asyncio.to_thread(self._write, path, data)
            return len(data)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        size = 0
        try:
            handle = await asyncio.to_thread(partial.open, "wb")
            try:
                async for chunk in _chunks_of(data, self._chunk_bytes):
                    await asyncio.to_thread(handle.write, chunk)
                    size += len(chunk)
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    async def put_many(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        # One trip to a thread for the lot: for small pages the trips cost more than the writes.
        await asyncio.to_thread(self._write_all, [(self._path(key), data) for key, data in blobs])

    @classmethod
    def _write_all(cls, files: list[tuple[Path, bytes]]) -> None:
        for path, data in files:
            cls._write(path, data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, self._chunk_bytes):
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        base = self._root / validate_key(prefix.rstrip("/")) if prefix.strip("/") else self._root
        if base.is_dir() and prefix.endswith("/"):
            count = sum(1 for p in base.rglob("*") if p.is_file())
            shutil.rmtree(base)
            return count
        count = 0
        for path in base.parent.glob(f"{base.name}*"):
            if path.is_file():
                path.unlink()
                count += 1
            elif path.is_dir():
                count += sum(1 for p in path.rglob("*") if p.is_file())
                shutil.rmtree(path)
        return count


def make_blob_store(settings: BlobSettings, db: Database) -> BlobStore:
    if settings.backend == "directory":
        return DirectoryBlobStore(settings)
    return GridFsBlobStore(db, settings)
