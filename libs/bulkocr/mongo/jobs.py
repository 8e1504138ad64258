"""`JobStore`: jobs, their documents, page outcomes and results, idempotency keys, upload
reservations and retention."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from bulkocr.contracts import (
    DocumentRef,
    JobOptions,
    JobStatus,
    NodeHeartbeat,
    PageDone,
    PageFailed,
    document_id,
    utcnow,
)
from bulkocr.mongo.client import INSERT_BATCH, Database, Document, document_key, insert_ignoring_duplicates, page_key
from bulkocr.mongo.records import (
    PLAN_STAGE,
    active_documents,
    document_as_it_stands,
    idempotency_claim_id,
    new_document,
    outcome_records,
)


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

    # --- jobs (the gateway creates them; the aggregator keeps their progress) ----------

    async def create_job(
        self,
        job_id: str,
        owner: str,
        options: JobOptions,
        documents: Sequence[DocumentRef],
        *,
        idempotency_key: str | None = None,
    ) -> bool:
        """Insert the job's documents, then the job itself as `queued`; False if the job id
        already exists. Documents go in batches (one insert per thousand files, not one per
        file), and the job comes last, so a job is never seen without its documents."""
        now = utcnow()
        for first in range(0, len(documents), INSERT_BATCH):
            batch = [new_document(job_id, ref) for ref in documents[first : first + INSERT_BATCH]]
            await insert_ignoring_duplicates(self.documents, batch)
        job: Document = {
            "_id": job_id,
            "owner": owner,
            "options": options.model_dump(mode="json"),
            "idempotency_key": idempotency_key,
            "created_at": now,
            "updated_at": now,
            "status": "queued",
            "documents_total": len(documents),
            "pages_total": 0,
            "pages_done": 0,
            "pages_failed": 0,
            "nodes": {},
            "started_at": None,
            "finished_at": None,
            "completed_event_sent": False,
        }
        return await self.insert_job(job)

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
            claim = {"_id": idempotency_claim_id(owner, key), "job_id": job_id, "at": utcnow()}
            await self.db["idempotency_keys"].insert_one(claim)
        except DuplicateKeyError:
            held = await self.db["idempotency_keys"].find_one({"_id": idempotency_claim_id(owner, key)})
            return str(held["job_id"]) if held else job_id
        return job_id

    async def release_idempotency_key(self, owner: str, key: str, job_id: str) -> None:
        """Give the key back when the request it was claimed for made no job."""
        await self.db["idempotency_keys"].delete_one({"_id": idempotency_claim_id(owner, key), "job_id": job_id})

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
        """Every document of the job as it stands, in id order (one scan of each collection:
        for work done once per job, never per page)."""
        job = await self.get_job(job_id) or {}
        cursor = self.documents.find({"job_id": job_id}).sort("doc_id", ASCENDING)
        uploaded = [document async for document in cursor]
        progress: dict[str, dict[str, Document]] = {}
        async for record in self.document_progress.find({"job_id": job_id}):
            progress.setdefault(record["doc_id"], {})[str(record["stage"])] = record
        active = active_documents(job)
        return [
            document_as_it_stands(document, job, active, progress.get(document["doc_id"], {})) for document in uploaded
        ]

    async def list_documents(self, job_id: str, *, skip: int = 0, limit: int = 100) -> list[Document]:
        """A page of the job's documents in id order (upload order, archive members after their archive)."""
        cursor = self.documents.find({"job_id": job_id}).sort("doc_id", ASCENDING).skip(skip).limit(limit)
        return await self._as_they_stand(job_id, [document async for document in cursor])

    async def first_documents(self, job_id: str, documents_total: int, limit: int) -> list[Document]:
        """The job's first `limit` documents in upload order (an archive's members after it),
        read by key: what a status shows costs the same on a full database."""
        uploaded = [document_id(index) for index in range(1, min(documents_total, limit) + 1)]
        shown: list[Document] = []
        for document in await self.documents_by_id(job_id, uploaded):
            if len(shown) >= limit:
                break
            shown.append(document)
            members = list(document.get("members") or [])[: limit - len(shown)]
            shown += await self.documents_by_id(job_id, members)
        return shown[:limit]

    async def count_documents(self, job_id: str) -> int:
        return await self.documents.count_documents({"job_id": job_id})

    async def documents_by_id(self, job_id: str, doc_ids: Sequence[str]) -> list[Document]:
        """These documents of the job as they stand, by their ids (lookups by key: no scan)."""
        if not doc_ids:
            return []
        found = await asyncio.gather(*(self.uploaded_document(job_id, doc_id) for doc_id in doc_ids))
        return await self._as_they_stand(job_id, [document for document in found if document is not None])

    async def get_document(self, job_id: str, doc_id: str) -> Document | None:
        """The document as it stands: its upload merged with its progress."""
        found = await self.documents_by_id(job_id, [doc_id])
        return found[0] if found else None

    async def uploaded_document(self, job_id: str, doc_id: str) -> Document | None:
        """The document's own record (its file, name and checksum), without its progress."""
        return await self.documents.find_one({"_id": document_key(job_id, doc_id)})

    async def _as_they_stand(self, job_id: str, uploaded: list[Document]) -> list[Document]:
        """Merge each document with its progress, read by key (one read of the job for all):
        its final record (the latest round first), else its plan, and the job record's live
        entries."""
        job = await self.get_job(job_id) or {}
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

    async def ingest_record(self, job_id: str, doc_id: str, *, batch: int) -> Document:
        """Ingest's own record of a document (its own collection, insert-only): `plans` it
        announced, `rendered`: the last page it queued, in steps of `batch` (0 if none),
        `done` once split. Read by key, so it costs the same on a full database."""
        key = document_key(job_id, doc_id)
        finished = await self.ingested.find_one({"_id": f"{key}#done"})
        if finished is not None:
            return {"plans": finished.get("plans", []), "rendered": 0, "done": True}
        started = await self.ingested.find_one({"_id": key})
        if started is None:
            return {"plans": [], "rendered": 0, "done": False}
        rendered = 0
        while await self.ingested.find_one({"_id": f"{key}#{rendered + batch}"}, {"_id": 1}) is not None:
            rendered += batch
        return {"plans": started.get("plans", []), "rendered": rendered, "done": False}

    async def record_ingest(
        self, job_id: str, doc_id: str, *, plans: list[Document] | None = None, rendered: int = 0, done: bool = False
    ) -> None:
        """Note a step of a document's split: its plans announced, pages rendered up to
        `rendered` (a multiple of the batch), or done. Each step is one insert."""
        key = document_key(job_id, doc_id)
        suffix = "#done" if done else f"#{rendered}" if rendered else ""
        record: Document = {"_id": f"{key}{suffix}", "job_id": job_id, "at": utcnow()}
        if plans is not None:
            record["plans"] = plans
        await insert_ignoring_duplicates(self.ingested, [record])

    # --- the page manifest (ingest writes it; the aggregator reads it after a restart) ---

    async def add_page_tasks(self, tasks: list[Document]) -> None:
        """Record page tasks before they are announced, keyed job/doc/page, in one insert
        (repeats are ignored)."""
        now = utcnow()
        entries = [
            {**task, "_id": page_key(task["job_id"], task["doc_id"], task["page"]), "queued_at": now} for task in tasks
        ]
        await insert_ignoring_duplicates(self.page_tasks, entries)

    async def page_tasks_of(self, job_id: str) -> list[Document]:
        """Every page task of a job (one scan: for taking a job over, never per page)."""
        return [task async for task in self.page_tasks.find({"job_id": job_id})]

    async def page_outcomes(self, job_id: str) -> list[Document]:
        """Every page record of a job, without results (one scan: for taking a job over and
        for the slow check, never per page)."""
        projection = {"doc_id": 1, "page": 1, "status": 1, "node_id": 1, "busy_s": 1, "error": 1}
        return [page async for page in self.pages.find({"job_id": job_id}, projection)]

    async def pages_worst_first(self, job_id: str, *, skip: int, limit: int) -> list[Document]:
        """A job's done pages ranked for a curator: blank pages first, then by rising mean word
        confidence (a page at a time: the database sorts, this reads one screenful)."""
        order = [("quality.blank", DESCENDING), ("quality.mean_confidence", ASCENDING), ("_id", ASCENDING)]
        query = {"job_id": job_id, "status": "done"}
        cursor = self.pages.find(query, {"doc_id": 1, "page": 1, "quality": 1}).sort(order).skip(skip).limit(limit)
        return [page async for page in cursor]

    async def count_pages(self, job_id: str, status: str) -> int:
        return await self.pages.count_documents({"job_id": job_id, "status": status})

    async def page_tasks_for(self, keys: list[str]) -> list[Document]:
        return [task async for task in self.page_tasks.find({"_id": {"$in": keys}})]

    async def get_pages(self, job_id: str, doc_id: str) -> list[Document]:
        """Every page of one document with an outcome or a failed attempt, in page order:
        done pages with their `result` (or `result_blob`) attached; a page still being
        retried as its latest failed attempt (status `retrying`)."""
        pages = {page["page"]: page async for page in self.pages.find({"job_id": job_id, "doc_id": doc_id})}
        async for attempt in self.page_attempts.find({"job_id": job_id, "doc_id": doc_id}):
            latest = pages.get(attempt["page"])
            if latest is None or (latest["status"] == "retrying" and latest["attempts"] < attempt["attempts"]):
                pages[attempt["page"]] = attempt
        for page in pages.values():
            if page["status"] == "done":
                # One lookup by _id a page: the only filter FerretDB answers without a scan.
                stored = await self.page_results.find_one({"_id": page["_id"]}) or {}
                page["result"], page["result_blob"] = stored.get("result"), stored.get("result_blob")
        return [pages[number] for number in sorted(pages)]

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

    async def record_outcome(self, report: PageDone | PageFailed) -> bool:
        """Store a page's outcome unless it already has one (the first one stays). True if new.

        The aggregator writes the same records in batches; this is the one-page form."""
        new = False
        for collection, record in outcome_records(report):
            new = await insert_ignoring_duplicates(self.db[collection], [record]) > 0
        return new

    async def reopen_failed_pages(self, job_id: str) -> list[str]:
        """Forget the failures of a job's pages that have a task to replay; return their keys."""
        failed = [page["_id"] async for page in self.pages.find({"job_id": job_id, "status": "failed"}, {"_id": 1})]
        replayable = [task["_id"] for task in await self.page_tasks_for(failed)]
        if replayable:
            await self.pages.delete_many({"_id": {"$in": replayable}, "status": "failed"})
        return replayable

    async def stored_bytes(self, owner: str) -> int:
        """Bytes of uploads the owner's jobs keep: one record per accepted job, removed with the
        job by retention. Summed, not counted up: FerretDB can lose concurrent `$inc`s."""
        return sum([int(record["bytes"]) async for record in self.db["upload_bytes"].find({"owner": owner})])

    async def reserve_upload_bytes(self, owner: str, job_id: str, size: int, quota: int) -> int | None:
        """Keep `size` bytes for the job if the owner's uploads stay within `quota`: None once
        kept, else the bytes the owner's other jobs keep. Reserved first, then checked, so two
        uploads that do not fit together are never both kept (at worst both are refused)."""
        await self.db["upload_bytes"].insert_one({"_id": job_id, "owner": owner, "bytes": size, "at": utcnow()})
        total = await self.stored_bytes(owner)
        if total <= quota:
            return None
        await self.release_upload_bytes(job_id)
        return total - size

    async def release_upload_bytes(self, job_id: str) -> None:
        await self.db["upload_bytes"].delete_one({"_id": job_id})

    async def delete_job(self, job_id: str) -> dict[str, int]:
        """Remove a job's records from every collection (its uploads' bytes no longer count
        against its owner's quota); return how many of each."""
        removed: dict[str, int] = {}
        by_field = (
            "pages",
            "page_results",
            "page_attempts",
            "page_tasks",
            "documents",
            "document_progress",
            "ingested",
            "outputs",
            "idempotency_keys",
            "archipelago_objects",
            "webhook_deliveries",
        )
        for name in by_field:
            removed[name] = (await self.db[name].delete_many({"job_id": job_id})).deleted_count
        for name in ("archipelago_requests", "archipelago", "upload_bytes"):
            removed[name] = (await self.db[name].delete_many({"_id": job_id})).deleted_count
        removed["jobs"] = (await self.jobs.delete_one({"_id": job_id})).deleted_count
        return removed

    async def finished_jobs_before(self, cutoff: datetime, statuses: tuple[JobStatus, ...]) -> list[str]:
        cursor = self.jobs.find({"status": {"$in": list(statuses)}, "finished_at": {"$lt": cutoff}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]
