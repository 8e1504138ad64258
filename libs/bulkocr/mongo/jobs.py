"""`JobStore`: what every service reads of a job: the job, its documents as they stand, its
pages and their results, the page manifest and the worker nodes; and the indexes those
reads rely on. What a service writes is in its own store (`gateway`, `ingest`,
`aggregator`), each a `JobStore` that adds its owner's writes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from bulkocr.mongo.client import Database, Document, document_key
from bulkocr.mongo.models import DocumentRecord, JobRecord, NodeRecord, PageRecord
from bulkocr.mongo.records import PLAN_STAGE, active_documents, document_as_it_stands, stored_result


class JobStore:
    """The reads of a job every service shares."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Typed collections: what a read returns is checked key by key where it is used.
        self.jobs = cast("AsyncCollection[JobRecord]", db["jobs"])
        self.documents = db["documents"]
        self.pages = db["pages"]
        self.nodes = cast("AsyncCollection[NodeRecord]", db["nodes"])
        self.ingested = db["ingested"]
        self.page_tasks = db["page_tasks"]
        self.page_results = db["page_results"]
        self.page_attempts = db["page_attempts"]
        self.document_progress = db["document_progress"]

    async def ensure_indexes(self) -> None:
        """Create the indexes every query relies on (idempotent; run at service start)."""
        await self.jobs.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("finished_at", ASCENDING)])
        await self.documents.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING), ("page", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("status", ASCENDING)])
        await self.page_tasks.create_index([("job_id", ASCENDING)])
        await self.page_results.create_index([("job_id", ASCENDING)])
        await self.page_attempts.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING)])
        await self.ingested.create_index([("job_id", ASCENDING)])
        await self.document_progress.create_index([("job_id", ASCENDING)])
        await self.jobs.create_index([("owner", ASCENDING), ("idempotency_key", ASCENDING)])

    async def get_job(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        """The job, or None; with `owner`, None also when someone else owns it."""
        query: Document = {"_id": job_id}
        if owner is not None:
            query["owner"] = owner
        return await self.jobs.find_one(query)

    async def get_documents(self, job_id: str) -> list[DocumentRecord]:
        """Every document of the job as it stands, in id order (one scan of each collection:
        for work done once per job, never per page)."""
        job: Mapping[str, Any] = await self.get_job(job_id) or {}
        cursor = self.documents.find({"job_id": job_id}).sort("doc_id", ASCENDING)
        uploaded = [document async for document in cursor]
        progress: dict[str, dict[str, Document]] = {}
        async for record in self.document_progress.find({"job_id": job_id}):
            progress.setdefault(record["doc_id"], {})[str(record["stage"])] = record
        active = active_documents(job)
        return [
            document_as_it_stands(document, job, active, progress.get(document["doc_id"], {})) for document in uploaded
        ]

    async def documents_by_id(self, job_id: str, doc_ids: Sequence[str]) -> list[DocumentRecord]:
        """These documents of the job as they stand, by their ids (lookups by key: no scan)."""
        if not doc_ids:
            return []
        found = await asyncio.gather(*(self.uploaded_document(job_id, doc_id) for doc_id in doc_ids))
        return await self._as_they_stand(job_id, [document for document in found if document is not None])

    async def get_document(self, job_id: str, doc_id: str) -> DocumentRecord | None:
        """The document as it stands: its upload merged with its progress."""
        found = await self.documents_by_id(job_id, [doc_id])
        return found[0] if found else None

    async def uploaded_document(self, job_id: str, doc_id: str) -> Document | None:
        """The document's own record (its file, name and checksum), without its progress."""
        return await self.documents.find_one({"_id": document_key(job_id, doc_id)})

    async def _as_they_stand(self, job_id: str, uploaded: list[Document]) -> list[DocumentRecord]:
        """Merge each document with its progress, read by key (one read of the job for all):
        its final record (the latest round first), else its plan, and the job record's live
        entries."""
        job: Mapping[str, Any] = await self.get_job(job_id) or {}
        rounds = range(int(job.get("replays") or 0), -1, -1)

        async def progress_of(document: Document) -> dict[str, Document]:
            key = document["_id"]
            for stage in [*map(str, rounds), PLAN_STAGE]:
                record = await self.document_progress.find_one({"_id": f"{key}@{stage}"})
                if record is not None:
                    return {stage: record}
            return {}

        found = await asyncio.gather(*(progress_of(document) for document in uploaded))
        active = active_documents(job)
        return [
            document_as_it_stands(document, job, active, progress)
            for document, progress in zip(uploaded, found, strict=True)
        ]

    async def page_tasks_for(self, keys: list[str]) -> list[Document]:
        return [task async for task in self.page_tasks.find({"_id": {"$in": keys}})]

    async def get_pages(self, job_id: str, doc_id: str) -> list[PageRecord]:
        """Every page of one document with an outcome or a failed attempt, in page order:
        done pages with their `result` (or `result_blob`) attached; a page still being
        retried as its latest failed attempt (status `retrying`)."""
        # Typed as the outcome and attempt records are written (`records`): the same shape.
        outcomes = cast("AsyncCollection[PageRecord]", self.pages)
        attempts = cast("AsyncCollection[PageRecord]", self.page_attempts)
        pages = {page["page"]: page async for page in outcomes.find({"job_id": job_id, "doc_id": doc_id})}
        async for attempt in attempts.find({"job_id": job_id, "doc_id": doc_id}):
            latest = pages.get(attempt["page"])
            if latest is None or (latest["status"] == "retrying" and latest["attempts"] < attempt["attempts"]):
                pages[attempt["page"]] = attempt
        for page in pages.values():
            if page["status"] == "done":
                # One lookup by _id a page: the only filter FerretDB answers without a scan.
                stored = await self.page_results.find_one({"_id": page["_id"]}) or {}
                page["result"], page["result_blob"] = stored_result(stored), stored.get("result_blob")
        return [pages[number] for number in sorted(pages)]

    async def list_nodes(self) -> list[NodeRecord]:
        return [node async for node in self.nodes.find({}).sort("_id", ASCENDING)]
