"""`OutputStore`: which heavy outputs (searchable PDF) of a job are built, and how that went."""

from __future__ import annotations

from collections.abc import Sequence

from bulkocr.contracts import (
    utcnow,
)
from bulkocr.mongo.client import Database, Document


class OutputStore:
    """Which heavy outputs of a job the output builder has made (its own collection: it is the
    only writer, and the gateway reads it for the status)."""

    def __init__(self, db: Database) -> None:
        self.outputs = db["outputs"]

    async def record(
        self, job_id: str, doc_id: str, fmt: str, *, status: str, size: int | None = None, error: str | None = None
    ) -> None:
        fields = {"job_id": job_id, "doc_id": doc_id, "format": fmt, "status": status, "size": size, "error": error}
        await self.outputs.update_one(
            {"_id": f"{job_id}/{doc_id}/{fmt}"}, {"$set": {**fields, "at": utcnow()}}, upsert=True
        )

    async def status(self, job_id: str, doc_id: str, fmt: str) -> str | None:
        found = await self.outputs.find_one({"_id": f"{job_id}/{doc_id}/{fmt}"})
        return None if found is None else str(found["status"])

    async def for_documents(self, job_id: str, doc_ids: Sequence[str]) -> list[Document]:
        if not doc_ids:
            return []
        return [entry async for entry in self.outputs.find({"job_id": job_id, "doc_id": {"$in": list(doc_ids)}})]
