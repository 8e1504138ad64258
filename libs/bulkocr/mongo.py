"""MongoDB access: the client factory and `JobStore`, the only module that imports pymongo
(GridFS aside, in `blobs.py`).

Only features that both MongoDB and FerretDB v1 support are used: no transactions, no
change streams, no TTL indexes, and `$group` with `$sum` only. FerretDB applies an update
as read-modify-write, so concurrent `$inc` can lose counts. Counters are therefore never
incremented: every page result is one document under a unique key, written at most once
(a redelivered result changes nothing), and progress is recounted from those documents.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from bulkocr.contracts import JobStatus, JobSubmitted, NodeHeartbeat, PageDone, PageFailed, utcnow
from bulkocr.settings import MongoSettings

log = structlog.get_logger(__name__)

Document = dict[str, Any]
Database = AsyncDatabase[Document]

PageStatus = Literal["done", "failed"]


@contextlib.asynccontextmanager
async def connect_mongo(settings: MongoSettings) -> AsyncIterator[Database]:
    """A client bound to the running loop, closed on exit; yields the configured database."""
    timeout_ms = int(settings.timeout_s * 1000)
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=True
    )
    try:
        yield client[settings.database]
    finally:
        await client.close()


def page_key(job_id: str, doc_id: str, page: int) -> str:
    return f"{job_id}/{doc_id}/{page}"


class JobStore:
    """Jobs, their documents, their page results and per-node progress."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = db["jobs"]
        self.documents = db["documents"]
        self.pages = db["pages"]
        self.nodes = db["nodes"]
        self.ingested = db["ingested"]

    async def ensure_indexes(self) -> None:
        """Create the indexes every query relies on (idempotent; run at service start)."""
        await self.jobs.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("finished_at", ASCENDING)])
        await self.documents.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING), ("page", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("status", ASCENDING)])

    # --- jobs (the gateway creates them; the aggregator keeps their progress) ----------

    async def create_job(self, submitted: JobSubmitted, *, idempotency_key: str | None = None) -> bool:
        """Insert the job and its documents as `queued`; False if the job id already exists."""
        now = utcnow()
        job: Document = {
            "_id": submitted.job_id,
            "owner": submitted.owner,
            "options": submitted.options.model_dump(mode="json"),
            "idempotency_key": idempotency_key,
            "created_at": now,
            "updated_at": now,
            "status": "queued",
            "documents_total": len(submitted.documents),
            "pages_total": 0,
            "pages_done": 0,
            "pages_failed": 0,
            "nodes": {},
            "started_at": None,
            "finished_at": None,
            "completed_event_sent": False,
            "archipelago": None,
        }
        try:
            await self.jobs.insert_one(job)
        except DuplicateKeyError:
            return False
        for document in submitted.documents:
            await self.documents.update_one(
                {"_id": f"{submitted.job_id}/{document.doc_id}"},
                {
                    "$setOnInsert": {
                        "job_id": submitted.job_id,
                        "doc_id": document.doc_id,
                        "filename": document.filename,
                        "blob": document.blob,
                        "size": document.size,
                        "sha256": document.sha256,
                        "pages": None,
                        "status": "queued",
                        "error": None,
                        "pages_done": 0,
                        "pages_failed": 0,
                    }
                },
                upsert=True,
            )
        return True

    async def insert_job(self, job: Mapping[str, Any]) -> bool:
        """Insert a raw job document; False if a job with that `_id` already exists."""
        try:
            await self.jobs.insert_one(dict(job))
        except DuplicateKeyError:
            return False
        return True

    async def get_job(self, job_id: str, *, owner: str | None = None) -> Document | None:
        """The job, or None; with `owner`, None also when someone else owns it."""
        query: Document = {"_id": job_id}
        if owner is not None:
            query["owner"] = owner
        return await self.jobs.find_one(query)

    async def find_job_by_idempotency_key(self, owner: str, key: str) -> Document | None:
        return await self.jobs.find_one({"owner": owner, "idempotency_key": key})

    async def list_jobs(self, owner: str, *, skip: int = 0, limit: int = 50) -> list[Document]:
        """The owner's jobs, newest first."""
        cursor = self.jobs.find({"owner": owner}).sort("created_at", DESCENDING).skip(skip).limit(limit)
        return [job async for job in cursor]

    async def count_jobs(self, owner: str) -> int:
        return await self.jobs.count_documents({"owner": owner})

    async def set_job_fields(self, job_id: str, fields: Mapping[str, Any]) -> None:
        await self.jobs.update_one({"_id": job_id}, {"$set": {**fields, "updated_at": utcnow()}})

    async def get_documents(self, job_id: str) -> list[Document]:
        cursor = self.documents.find({"job_id": job_id}).sort("doc_id", ASCENDING)
        return [document async for document in cursor]

    async def get_document(self, job_id: str, doc_id: str) -> Document | None:
        return await self.documents.find_one({"_id": f"{job_id}/{doc_id}"})

    async def set_document_fields(self, job_id: str, doc_id: str, fields: Mapping[str, Any]) -> None:
        await self.documents.update_one({"_id": f"{job_id}/{doc_id}"}, {"$set": dict(fields)})

    async def plan_document(
        self, job_id: str, doc_id: str, fields: Mapping[str, Any], *, filename: str | None = None
    ) -> None:
        """Set a document's plan (pages, error, members), creating it if ingest found it inside an archive."""
        defaults: Document = {
            "job_id": job_id,
            "doc_id": doc_id,
            "filename": filename or doc_id,
            "pages": None,
            "status": "queued",
            "error": None,
            "pages_done": 0,
            "pages_failed": 0,
        }
        update: Document = {"$setOnInsert": {k: v for k, v in defaults.items() if k not in fields}}
        if fields:
            update["$set"] = dict(fields)
        try:
            await self.documents.update_one({"_id": f"{job_id}/{doc_id}"}, update, upsert=True)
        except DuplicateKeyError:  # two first plans at once: the other created it, so set ours
            if fields:
                await self.documents.update_one({"_id": f"{job_id}/{doc_id}"}, {"$set": dict(fields)})

    async def mark_ingested(self, job_id: str, doc_id: str) -> None:
        """Ingest's own record that a document was split (its own collection: the aggregator
        writes the document itself, and FerretDB could let one update undo the other)."""
        await self.ingested.update_one(
            {"_id": f"{job_id}/{doc_id}"}, {"$setOnInsert": {"job_id": job_id, "at": utcnow()}}, upsert=True
        )

    async def is_ingested(self, job_id: str, doc_id: str) -> bool:
        return await self.ingested.find_one({"_id": f"{job_id}/{doc_id}"}, {"_id": 1}) is not None

    async def get_pages(self, job_id: str, doc_id: str) -> list[Document]:
        """Every stored page outcome of one document, in page order."""
        cursor = self.pages.find({"job_id": job_id, "doc_id": doc_id}).sort("page", ASCENDING)
        return [page async for page in cursor]

    # --- worker nodes (the aggregator writes heartbeats) ----------------------------------

    async def record_heartbeat(self, beat: NodeHeartbeat) -> None:
        worker = {
            "in_flight": beat.in_flight,
            "pages_done": beat.pages_done,
            "pages_failed": beat.pages_failed,
            "engine": beat.engine,
            "last_seen": beat.at,
        }
        await self.nodes.update_one(
            {"_id": beat.node_id},
            {"$set": {f"workers.{beat.worker_id}": worker, "last_seen": beat.at, "engine": beat.engine}},
            upsert=True,
        )

    async def list_nodes(self) -> list[Document]:
        return [node async for node in self.nodes.find({}).sort("_id", ASCENDING)]

    # --- page results -------------------------------------------------------------------

    async def record_page_done(self, done: PageDone) -> bool:
        """Store a page result once. True if this call stored it, False for a repeat.

        A page that failed before and is now done (a replay) is overwritten; a page that is
        already done is left alone, whichever copy of the result arrives.
        """
        key = page_key(done.job_id, done.doc_id, done.page)
        fields: Document = {
            "job_id": done.job_id,
            "doc_id": done.doc_id,
            "page": done.page,
            "status": "done",
            "node_id": done.node_id,
            "worker_id": done.worker_id,
            "attempts": done.attempts,
            "timings": done.timings.model_dump(),
            # Top level, because FerretDB's $sum ignores dotted paths.
            "busy_s": done.timings.total_s,
            "result": done.result.model_dump() if done.result else None,
            "result_blob": done.result_blob,
            "error": None,
            "finished_at": utcnow(),
        }
        return await self._write_once({"_id": key, "status": {"$ne": "done"}}, {"$set": fields})

    async def record_page_failed(self, failed: PageFailed) -> bool:
        """Store a page failure unless the page already has an outcome."""
        key = page_key(failed.job_id, failed.doc_id, failed.page)
        fields: Document = {
            "job_id": failed.job_id,
            "doc_id": failed.doc_id,
            "page": failed.page,
            "status": "failed",
            "node_id": failed.node_id,
            "worker_id": failed.worker_id,
            "attempts": failed.attempts,
            "error": failed.error,
            "finished_at": utcnow(),
        }
        return await self._write_once({"_id": key}, {"$setOnInsert": fields})

    async def _write_once(self, query: Document, update: Document) -> bool:
        try:
            result = await self.pages.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            # The filter missed an existing page (already done) and the upsert hit its key.
            return False
        return result.upserted_id is not None or result.modified_count > 0

    async def page_counts(self, job_id: str) -> dict[PageStatus, int]:
        """Pages of a job with an outcome, counted from the page documents themselves."""
        done = await self.pages.count_documents({"job_id": job_id, "status": "done"})
        failed = await self.pages.count_documents({"job_id": job_id, "status": "failed"})
        return {"done": done, "failed": failed}

    async def node_counts(self, job_id: str) -> dict[str, Document]:
        """Per node: pages done, pages failed and OCR seconds, counted from the page documents."""
        nodes: dict[str, Document] = {}
        # One accumulator per $group: FerretDB v1 computes only the first of several.
        sums = [("done", "pages_done", 1), ("failed", "pages_failed", 1), ("done", "busy_seconds", "$busy_s")]
        for status, field, expression in sums:
            cursor = await self.pages.aggregate(
                [
                    {"$match": {"job_id": job_id, "status": status}},
                    {"$group": {"_id": "$node_id", "value": {"$sum": expression}}},
                ]
            )
            async for row in cursor:
                node = nodes.setdefault(row["_id"], {"pages_done": 0, "pages_failed": 0, "busy_seconds": 0.0})
                node[field] = row["value"] if field != "busy_seconds" else float(row["value"] or 0)
        return nodes

    async def document_counts(self, job_id: str) -> dict[str, dict[PageStatus, int]]:
        """Per document of a job: pages done and failed."""
        documents: dict[str, dict[PageStatus, int]] = {}
        statuses: tuple[PageStatus, ...] = ("done", "failed")
        for status in statuses:
            cursor = await self.pages.aggregate(
                [{"$match": {"job_id": job_id, "status": status}}, {"$group": {"_id": "$doc_id", "n": {"$sum": 1}}}]
            )
            async for row in cursor:
                documents.setdefault(row["_id"], {"done": 0, "failed": 0})[status] = row["n"]
        return documents

    async def finished_jobs_before(self, cutoff: datetime, statuses: tuple[JobStatus, ...]) -> list[str]:
        cursor = self.jobs.find({"status": {"$in": list(statuses)}, "finished_at": {"$lt": cutoff}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]
