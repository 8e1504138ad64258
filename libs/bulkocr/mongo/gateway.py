"""`GatewayJobStore`: what the gateway writes and lists: jobs as submitted with their
documents, idempotency keys, upload reservations, and the paginated listings it serves."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from bulkocr.contracts import DocumentRef, JobOptions, document_id, utcnow
from bulkocr.mongo.client import INSERT_BATCH, Document, insert_ignoring_duplicates
from bulkocr.mongo.jobs import JobStore
from bulkocr.mongo.models import DocumentRecord, JobRecord
from bulkocr.mongo.records import idempotency_claim_id, new_document, new_job


class GatewayJobStore(JobStore):
    """Jobs and documents as the gateway creates and lists them."""

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
        for first in range(0, len(documents), INSERT_BATCH):
            batch = [new_document(job_id, ref) for ref in documents[first : first + INSERT_BATCH]]
            await insert_ignoring_duplicates(self.documents, batch)
        job = new_job(job_id, owner, options, len(documents), idempotency_key=idempotency_key)
        return await self.insert_job(job)

    async def insert_job(self, job: JobRecord) -> bool:
        """Insert a job record; False if a job with that `_id` already exists."""
        try:
            await self.jobs.insert_one(job)
        except DuplicateKeyError:
            return False
        return True

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

    async def find_job_by_idempotency_key(self, owner: str, key: str) -> JobRecord | None:
        return await self.jobs.find_one({"owner": owner, "idempotency_key": key})

    async def list_jobs(self, owner: str, *, skip: int = 0, limit: int = 50) -> list[JobRecord]:
        """The owner's jobs, newest first."""
        cursor = self.jobs.find({"owner": owner}).sort("created_at", DESCENDING).skip(skip).limit(limit)
        return [job async for job in cursor]

    async def count_jobs(self, owner: str) -> int:
        return await self.jobs.count_documents({"owner": owner})

    async def list_documents(self, job_id: str, *, skip: int = 0, limit: int = 100) -> list[DocumentRecord]:
        """A page of the job's documents in id order (upload order, archive members after their archive)."""
        cursor = self.documents.find({"job_id": job_id}).sort("doc_id", ASCENDING).skip(skip).limit(limit)
        return await self._as_they_stand(job_id, [document async for document in cursor])

    async def first_documents(self, job_id: str, documents_total: int, limit: int) -> list[DocumentRecord]:
        """The job's first `limit` documents in upload order (an archive's members after it),
        read by key: what a status shows costs the same on a full database."""
        uploaded = [document_id(index) for index in range(1, min(documents_total, limit) + 1)]
        shown: list[DocumentRecord] = []
        for document in await self.documents_by_id(job_id, uploaded):
            if len(shown) >= limit:
                break
            shown.append(document)
            members = list(document.get("members") or [])[: limit - len(shown)]
            shown += await self.documents_by_id(job_id, members)
        return shown[:limit]

    async def count_documents(self, job_id: str) -> int:
        return await self.documents.count_documents({"job_id": job_id})

    async def pages_worst_first(self, job_id: str, *, skip: int, limit: int) -> list[Document]:
        """A job's done pages ranked for a curator: blank pages first, then by rising mean word
        confidence (a page at a time: the database sorts, this reads one screenful)."""
        order = [("quality.blank", DESCENDING), ("quality.mean_confidence", ASCENDING), ("_id", ASCENDING)]
        query = {"job_id": job_id, "status": "done"}
        cursor = self.pages.find(query, {"doc_id": 1, "page": 1, "quality": 1}).sort(order).skip(skip).limit(limit)
        return [page async for page in cursor]

    async def count_pages(self, job_id: str, status: str) -> int:
        return await self.pages.count_documents({"job_id": job_id, "status": status})

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
