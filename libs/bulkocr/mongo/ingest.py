"""`IngestJobStore`: ingest's own records of each document's split (insert-only, so a
redelivery resumes) and the page manifest it writes before announcing pages."""

from __future__ import annotations

from bulkocr.contracts import utcnow
from bulkocr.mongo.client import Document, document_key, insert_ignoring_duplicates, page_key
from bulkocr.mongo.jobs import JobStore


class IngestJobStore(JobStore):
    """The split of each document and the page tasks it made."""

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

    async def add_page_tasks(self, tasks: list[Document]) -> None:
        """Record page tasks before they are announced, keyed job/doc/page, in one insert
        (repeats are ignored)."""
        now = utcnow()
        entries = [
            {**task, "_id": page_key(task["job_id"], task["doc_id"], task["page"]), "queued_at": now} for task in tasks
        ]
        await insert_ignoring_duplicates(self.page_tasks, entries)
