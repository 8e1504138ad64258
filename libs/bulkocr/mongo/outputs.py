"""`OutputStore`: which heavy outputs (searchable PDF) of a job are built, and how that went."""

from __future__ import annotations

import asyncio
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

    async def for_documents(self, job_id: str, doc_ids: Sequence[str], formats: Sequence[str]) -> list[Document]:
        """The records of these documents' outputs in these formats, each read by its key:
        FerretDB answers any other filter by reading the records of every retained job, and
        the status route asks on every poll."""
        keys = [f"{job_id}/{doc_id}/{fmt}" for doc_id in doc_ids for fmt in formats]
        found = await asyncio.gather(*(self.outputs.find_one({"_id": key}) for key in keys))
        return [record for record in found if record is not None]
