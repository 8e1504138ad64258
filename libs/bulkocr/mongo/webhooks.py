"""`WebhookStore`: every attempt at delivering a job's webhooks, for its owner to read.

Insert-only (FerretDB answers an insert or a lookup by `_id` at a constant cost, an update by
reading the collection): each attempt is a record of its own, and the attempt that ends a
delivery (delivered, refused, or the last one) is inserted under `<delivery id>#end`, so a
redelivered message finds the delivery ended with one lookup by key and does not send again.
The notifier writes it; the gateway reads it; retention removes it with the job.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING

from bulkocr.mongo.client import Database, Document, insert_ignoring_duplicates


def end_key(delivery_id: str) -> str:
    return f"{delivery_id}#end"


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.deliveries = db["webhook_deliveries"]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index([("job_id", ASCENDING), ("at", ASCENDING)])

    async def record_attempt(self, record: Mapping[str, Any], *, ends: bool) -> bool:
        """Insert an attempt; one that `ends` its delivery under the delivery's end key (False
        if another attempt ended it first: a duplicate message raced this one)."""
        key = end_key(record["delivery_id"]) if ends else f"{record['delivery_id']}#{uuid.uuid4().hex[:12]}"
        return await insert_ignoring_duplicates(self.deliveries, [{**record, "_id": key, "ends": ends}]) == 1

    async def ended(self, delivery_id: str) -> Document | None:
        """The attempt that ended the delivery, if one did."""
        return await self.deliveries.find_one({"_id": end_key(delivery_id)})

    async def for_job(self, job_id: str, *, skip: int = 0, limit: int = 100) -> list[Document]:
        """The job's attempts, oldest first."""
        cursor = self.deliveries.find({"job_id": job_id}).sort([("at", ASCENDING), ("attempt", ASCENDING)])
        return [record async for record in cursor.skip(skip).limit(limit)]

    async def count_for_job(self, job_id: str) -> int:
        return await self.deliveries.count_documents({"job_id": job_id})
