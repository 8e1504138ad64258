"""Blob stores: GridFS on the real MongoDB-wire server, and a directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bulkocr.blobs import BlobStore, DirectoryBlobStore, GridFsBlobStore
from bulkocr.errors import BlobNotFound
from bulkocr.mongo import Database
from bulkocr.settings import BlobSettings


@pytest.fixture(params=["gridfs", "directory"])
def blob_store(request: pytest.FixtureRequest, db: Database, tmp_path) -> BlobStore:
    settings = BlobSettings(backend=request.param, directory=tmp_path / "blobs", chunk_bytes=256 * 1024)
    return GridFsBlobStore(db, settings) if request.param == "gridfs" else DirectoryBlobStore(settings)


async def in_chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_streamed_blob_round_trips_byte_for_byte(blob_store: BlobStore):
    """A 5 MB upload streamed in odd-sized chunks comes back identical, in chunks no bigger than the setting."""
    data = os.urandom(5 * 1024 * 1024 + 17)
    assert await blob_store.put("jobs/j1/uploads/scan.pdf", in_chunks(data, 100_003)) == len(data)
    chunks = [chunk async for chunk in blob_store.stream("jobs/j1/uploads/scan.pdf")]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 256 * 1024


async def test_putting_a_key_again_replaces_its_content(blob_store: BlobStore):
    """put is idempotent per key: the latest content wins and no second copy remains."""
    await blob_store.put("jobs/j1/pages/d1/1.png", b"first")
    await blob_store.put("jobs/j1/pages/d1/1.png", b"second")
    assert await blob_store.get("jobs/j1/pages/d1/1.png") == b"second"


async def test_a_batch_of_pages_is_stored_in_one_go_and_refuses_a_bad_key(blob_store: BlobStore):
    """put_many stores every blob of a batch (replacing older content) and, like put,
    refuses a key that would escape the store."""
    await blob_store.put("jobs/j1/pages/d1/00002.png", b"old")
    await blob_store.put_many([(f"jobs/j1/pages/d1/{n:05d}.png", b"page %d" % n) for n in range(1, 101)])
    assert [await blob_store.get(f"jobs/j1/pages/d1/{n:05d}.png") for n in (1, 2, 100)] == [
        b"page 1",
        b"page 2",
        b"page 100",
    ]
    with pytest.raises(ValueError, match="invalid blob key"):
        await blob_store.put_many([("jobs/j1/ok", b"x"), ("../out", b"x")])


async def test_delete_prefix_removes_one_job_and_nothing_else(blob_store: BlobStore):
    """Deleting a job's prefix removes its blobs and leaves another job's alone."""
    for key in ("jobs/j1/a", "jobs/j1/pages/b", "jobs/j10/c"):
        await blob_store.put(key, b"x")
    assert await blob_store.delete_prefix("jobs/j1/") == 2
    assert not await blob_store.exists("jobs/j1/a")
    assert await blob_store.exists("jobs/j10/c")


async def test_missing_blob_is_a_clear_error(blob_store: BlobStore):
    """Reading a key that was never stored raises BlobNotFound naming the key."""
    with pytest.raises(BlobNotFound, match="jobs/none"):
        await blob_store.get("jobs/none")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", ""])
async def test_keys_cannot_escape_the_store(blob_store: BlobStore, key: str):
    """Keys with `..`, absolute paths or nothing at all are refused."""
    with pytest.raises(ValueError, match="invalid blob key"):
        await blob_store.put(key, b"x")
