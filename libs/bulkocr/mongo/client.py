"""The MongoDB client and what every store shares: the document types, keys, batched inserts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from bulkocr.ops import HEALTH
from bulkocr.settings import MongoSettings

Document = dict[str, Any]
Database = AsyncDatabase[Document]

PageStatus = Literal["done", "failed", "retrying"]


@contextlib.asynccontextmanager
async def connect_mongo(settings: MongoSettings) -> AsyncIterator[Database]:
    """A client bound to the running loop, closed on exit; yields the configured database."""
    timeout_ms = int(settings.timeout_s * 1000)
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=True
    )
    database = client[settings.database]
    HEALTH.depends_on("database", lambda: database.command("ping"))
    try:
        yield database
    finally:
        HEALTH.forget("database")
        await client.close()


def page_key(job_id: str, doc_id: str, page: int) -> str:
    return f"{job_id}/{doc_id}/{page}"


def document_key(job_id: str, doc_id: str) -> str:
    return f"{job_id}/{doc_id}"


INSERT_BATCH = 1000
DUPLICATE_KEY = 11000


async def insert_ignoring_duplicates(collection: AsyncCollection[Document], documents: list[Document]) -> int:
    """Insert what is not there yet (a repeat of an earlier insert changes nothing); return
    how many were new."""
    if not documents:
        return 0
    try:
        result = await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others:
            raise
        return int(error.details.get("nInserted", 0))
    return len(result.inserted_ids)
