"""`ArchipelagoStore`: push requests and the objects a push created in Archipelago."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from bulkocr.contracts import (
    utcnow,
)
from bulkocr.mongo.client import Database, Document


class ArchipelagoStore:
    """What the uploader records about pushes to Archipelago, in collections of its own.

    Never in the `jobs` document: the aggregator writes that one, and FerretDB applies an
    update as read-modify-write, so two services writing one document can undo each other.
    Each collection has one writer: the gateway writes `archipelago_requests` (a push was
    asked for), the uploader writes `archipelago` (one document per job: the latest run)
    and `archipelago_objects` (one per job document: its object, files and state).
    """

    def __init__(self, db: Database) -> None:
        self.requests = db["archipelago_requests"]
        self.pushes = db["archipelago"]
        self.objects = db["archipelago_objects"]

    async def ensure_indexes(self) -> None:
        await self.objects.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING)], unique=True)

    async def request_push(self, job_id: str, owner: str, options: Mapping[str, Any]) -> str:
        """Record that a push was asked for; returns the request's id (the uploader notes the
        request it serves, so a status can tell a newer request from the run before it)."""
        request_id = uuid.uuid4().hex
        fields = {"owner": owner, "options": dict(options), "request_id": request_id, "requested_at": utcnow()}
        await self.requests.update_one({"_id": job_id}, {"$set": fields}, upsert=True)
        return request_id

    async def withdraw_request(self, job_id: str, request_id: str) -> None:
        """Forget a request that could not be queued (unless a newer one replaced it)."""
        await self.requests.delete_one({"_id": job_id, "request_id": request_id})

    async def get_request(self, job_id: str) -> Document | None:
        return await self.requests.find_one({"_id": job_id})

    async def get_push(self, job_id: str) -> Document | None:
        return await self.pushes.find_one({"_id": job_id})

    async def set_push_fields(self, job_id: str, fields: Mapping[str, Any]) -> None:
        await self.pushes.update_one({"_id": job_id}, {"$set": {**fields, "updated_at": utcnow()}}, upsert=True)

    async def get_objects(self, job_id: str) -> list[Document]:
        cursor = self.objects.find({"job_id": job_id}).sort("doc_id", ASCENDING)
        return [entry async for entry in cursor]

    async def get_object(self, job_id: str, doc_id: str) -> Document | None:
        return await self.objects.find_one({"_id": f"{job_id}/{doc_id}"})

    async def set_object_fields(
        self, job_id: str, doc_id: str, fields: Mapping[str, Any], *, on_insert: Mapping[str, Any] | None = None
    ) -> None:
        """Set fields of a document's entry, creating it (with `on_insert` too) if it is new."""
        update: Document = {"$set": {**fields, "job_id": job_id, "doc_id": doc_id, "updated_at": utcnow()}}
        if on_insert:
            update["$setOnInsert"] = {key: value for key, value in on_insert.items() if key not in fields}
        try:
            await self.objects.update_one({"_id": f"{job_id}/{doc_id}"}, update, upsert=True)
        except DuplicateKeyError:  # created concurrently: it exists now, so set ours
            await self.objects.update_one({"_id": f"{job_id}/{doc_id}"}, {"$set": update["$set"]})
