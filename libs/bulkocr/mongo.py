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
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from bulkocr.contracts import (
    DocumentRef,
    JobOptions,
    JobStatus,
    JobSubmitted,
    NodeHeartbeat,
    PageDone,
    PageFailed,
    PageRetrying,
    utcnow,
)
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
        self.page_tasks = db["page_tasks"]
        self.page_results = db["page_results"]

    async def ensure_indexes(self) -> None:
        """Create the indexes every query relies on (idempotent; run at service start)."""
        await self.jobs.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        await self.jobs.create_index([("status", ASCENDING), ("finished_at", ASCENDING)])
        await self.documents.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("doc_id", ASCENDING), ("page", ASCENDING)], unique=True)
        await self.pages.create_index([("job_id", ASCENDING), ("status", ASCENDING)])
        await self.page_tasks.create_index([("job_id", ASCENDING)])
        await self.page_results.create_index([("job_id", ASCENDING)])

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
        }
        if not await self.insert_job(job):
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

    async def resubmission(self, job: Mapping[str, Any], *, only: set[str] | None = None) -> JobSubmitted:
        """The job as the gateway first submitted it (its uploaded documents, or those in `only`),
        to publish again: ingest skips documents it has already split."""
        uploads = [
            d for d in await self.get_documents(job["_id"]) if d.get("blob") and (only is None or d["doc_id"] in only)
        ]
        return JobSubmitted(
            job_id=job["_id"],
            owner=job["owner"],
            documents=tuple(
                DocumentRef(
                    doc_id=d["doc_id"], filename=d["filename"], blob=d["blob"], size=d["size"], sha256=d["sha256"]
                )
                for d in uploads
            ),
            options=JobOptions.model_validate(job["options"]),
        )

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

    async def claim_idempotency_key(self, owner: str, key: str, job_id: str) -> str:
        """Claim `key` for `job_id` unless another request holds it; return the holder's job id.
        A unique `_id` makes the claim atomic on FerretDB and MongoDB alike."""
        try:
            await self.db["idempotency_keys"].insert_one({"_id": f"{owner}/{key}", "job_id": job_id, "at": utcnow()})
        except DuplicateKeyError:
            held = await self.db["idempotency_keys"].find_one({"_id": f"{owner}/{key}"})
            return str(held["job_id"]) if held else job_id
        return job_id

    async def release_idempotency_key(self, owner: str, key: str, job_id: str) -> None:
        """Give the key back when the request it was claimed for made no job."""
        await self.db["idempotency_keys"].delete_one({"_id": f"{owner}/{key}", "job_id": job_id})

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

    async def mark_ingested(self, job_id: str, doc_id: str, plans: list[Document]) -> None:
        """Ingest's own record that a document was split, with the plans it announced (its own
        collection: the aggregator writes the document itself, and FerretDB could let one
        update undo the other)."""
        await self.ingested.update_one(
            {"_id": f"{job_id}/{doc_id}"},
            {"$setOnInsert": {"job_id": job_id, "plans": plans, "at": utcnow()}},
            upsert=True,
        )

    async def ingested_plans(self, job_id: str, doc_id: str) -> list[Document] | None:
        """The plans announced when the document was split, or None if it was not split yet."""
        record = await self.ingested.find_one({"_id": f"{job_id}/{doc_id}"})
        return None if record is None else list(record.get("plans", []))

    # --- the page manifest (ingest writes it; sweeper and replay read it) -------------

    async def add_page_tasks(self, tasks: list[Document]) -> None:
        """Record page tasks before they are published, keyed job/doc/page (repeats are ignored)."""
        for task in tasks:
            await self.page_tasks.update_one(
                {"_id": page_key(task["job_id"], task["doc_id"], task["page"])},
                {"$setOnInsert": {**task, "queued_at": utcnow()}},
                upsert=True,
            )

    async def page_tasks_without_outcome(self, job_id: str) -> list[Document]:
        """Tasks of a job whose page has neither a result nor a failure."""
        finished = {
            page["_id"]
            async for page in self.pages.find({"job_id": job_id, "status": {"$in": ["done", "failed"]}}, {"_id": 1})
        }
        return [task async for task in self.page_tasks.find({"job_id": job_id}) if task["_id"] not in finished]

    async def page_tasks_for(self, keys: list[str]) -> list[Document]:
        return [task async for task in self.page_tasks.find({"_id": {"$in": keys}})]

    async def get_pages(self, job_id: str, doc_id: str) -> list[Document]:
        """Every stored page outcome of one document, in page order, done pages with their
        `result` (or `result_blob`) attached."""
        cursor = self.pages.find({"job_id": job_id, "doc_id": doc_id}).sort("page", ASCENDING)
        pages = [page async for page in cursor]
        for page in pages:
            if page["status"] == "done":
                # One lookup by _id a page: the only filter FerretDB answers without a scan.
                stored = await self.page_results.find_one({"_id": page["_id"]}) or {}
                page["result"], page["result_blob"] = stored.get("result"), stored.get("result_blob")
        return pages

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

        The OCR result itself goes to `page_results`, stored first so a done page always has
        one: kept out of `pages`, it keeps the counting scans small (FerretDB reads whole
        documents to filter, and a dense page's result is ~50 KB: measured 2.6 s against
        0.03 s to count 2,000 pages).
        """
        key = page_key(done.job_id, done.doc_id, done.page)
        result = {"job_id": done.job_id, "result": done.result.model_dump() if done.result else None}
        stored = {**result, "result_blob": done.result_blob}
        try:
            await self.page_results.replace_one({"_id": key}, stored, upsert=True)
        except DuplicateKeyError:  # a concurrent copy inserted it first: replace that one
            await self.page_results.replace_one({"_id": key}, stored)
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
        return await self._write_once({"_id": key, "status": {"$nin": ["done", "failed"]}}, {"$set": fields})

    async def record_page_retrying(self, retrying: PageRetrying) -> bool:
        """Note a failed attempt (attempts, last error) on a page that has no outcome yet."""
        key = page_key(retrying.job_id, retrying.doc_id, retrying.page)
        fields: Document = {
            "job_id": retrying.job_id,
            "doc_id": retrying.doc_id,
            "page": retrying.page,
            "status": "retrying",
            "node_id": retrying.node_id,
            "attempts": retrying.attempts,
            "error": retrying.error,
        }
        return await self._write_once({"_id": key, "status": {"$nin": ["done", "failed"]}}, {"$set": fields})

    async def reopen_failed_pages(self, job_id: str) -> list[str]:
        """Forget the failures of a job's pages that have a task to replay; return their keys."""
        failed = [page["_id"] async for page in self.pages.find({"job_id": job_id, "status": "failed"}, {"_id": 1})]
        replayable = [task["_id"] for task in await self.page_tasks_for(failed)]
        if replayable:
            await self.pages.delete_many({"_id": {"$in": replayable}, "status": "failed"})
        return replayable

    async def delete_job(self, job_id: str) -> dict[str, int]:
        """Remove a job's records from every collection; return how many of each."""
        removed: dict[str, int] = {}
        by_field = (
            "pages",
            "page_tasks",
            "documents",
            "ingested",
            "outputs",
            "idempotency_keys",
            "archipelago_objects",
        )
        for name in by_field:
            removed[name] = (await self.db[name].delete_many({"job_id": job_id})).deleted_count
        for name in ("archipelago_requests", "archipelago"):
            removed[name] = (await self.db[name].delete_many({"_id": job_id})).deleted_count
        removed["jobs"] = (await self.jobs.delete_one({"_id": job_id})).deleted_count
        return removed

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

    async def for_job(self, job_id: str) -> list[Document]:
        return [entry async for entry in self.outputs.find({"job_id": job_id})]
