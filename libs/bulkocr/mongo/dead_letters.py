"""`DeadLetterStore`: the messages consumers gave up on, kept for an operator to read, replay
or drop.

nsqd holds a dead letter only until something consumes it, and offers no way to read one
without taking it; so the aggregator takes every `<topic>.dlq` and keeps each letter here,
written once under a key made of its content (a redelivered letter is the same record).
The gateway reads them and marks a replay; retention removes them with the jobs' age limit.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pymongo import DESCENDING

from bulkocr.contracts import DeadLetter, utcnow
from bulkocr.mongo.client import Database, Document, insert_ignoring_duplicates

# What a letter's body says about where it belongs, when it is a JSON message.
_BODY_FIELDS = ("job_id", "doc_id", "page")


def letter_id(letter: DeadLetter) -> str:
    key = json.dumps([letter.topic, letter.channel, letter.body, letter.cause, letter.at.isoformat()])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _about(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    tasks = parsed.get("tasks")
    if isinstance(tasks, list) and len(tasks) == 1 and isinstance(tasks[0], dict):
        parsed = {
            **tasks[0],
            **parsed,
        }  # a batch of one page: the letter is that page's (a larger one's cause names each)
    return {field: parsed[field] for field in _BODY_FIELDS if field in parsed}


class DeadLetterStore:
    def __init__(self, db: Database) -> None:
        self.letters = db["dead_letters"]

    async def ensure_indexes(self) -> None:
        await self.letters.create_index([("at", DESCENDING)])

    async def keep(self, letter: DeadLetter) -> bool:
        """Keep a letter; False if it was kept already (nsqd delivered it again)."""
        record = {"_id": letter_id(letter), **letter.model_dump(), **_about(letter.body), "replays": 0}
        return await insert_ignoring_duplicates(self.letters, [record]) == 1

    async def list(self, *, topic: str | None = None, limit: int = 50) -> list[Document]:
        """The newest letters first, without their bodies (which may be large)."""
        query = {"topic": topic} if topic else {}
        cursor = self.letters.find(query, {"body": 0}).sort("at", DESCENDING).limit(limit)
        return [letter async for letter in cursor]

    async def count_by_topic(self) -> dict[str, int]:
        pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$topic", "count": {"$sum": 1}}}]
        return {str(row["_id"]): int(row["count"]) async for row in await self.letters.aggregate(pipeline)}

    async def get(self, key: str) -> Document | None:
        return await self.letters.find_one({"_id": key})

    async def mark_replayed(self, key: str, replays: int) -> None:
        """Only the gateway writes after the keeper's insert, one field set per replay."""
        await self.letters.update_one({"_id": key}, {"$set": {"replays": replays, "replayed_at": utcnow()}})

    async def drop(self, key: str) -> bool:
        return (await self.letters.delete_one({"_id": key})).deleted_count == 1

    async def remove_before(self, cutoff: datetime) -> int:
        return (await self.letters.delete_many({"at": {"$lt": cutoff}})).deleted_count
