"""The records the services write, built in one place: documents, page outcomes and
attempts, document progress (insert-only: a plan, then one final record per round)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any, cast

from bulkocr.contracts import (
    DocumentRef,
    JobOptions,
    PageDone,
    PageFailed,
    PageRetrying,
    PageTask,
    utcnow,
)
from bulkocr.mongo.client import Document, PageStatus, document_key, page_key
from bulkocr.mongo.models import DocumentRecord, JobRecord
from bulkocr.page_model import PageText


def new_document(job_id: str, ref: DocumentRef) -> Document:
    """A document record as the gateway creates it: queued until ingest plans it."""
    return {
        "_id": document_key(job_id, ref.doc_id),
        "job_id": job_id,
        "doc_id": ref.doc_id,
        "filename": ref.filename,
        "blob": ref.blob,
        "size": ref.size,
        "sha256": ref.sha256,
        "duplicate_of": ref.duplicate_of,
        "language": ref.language,
        "pages": None,
        "status": "queued",
        "error": None,
        "pages_done": 0,
        "pages_failed": 0,
    }


def new_job(
    job_id: str, owner: str, options: JobOptions, documents_total: int, *, idempotency_key: str | None = None
) -> JobRecord:
    """A job record as the gateway creates it: queued, nothing counted yet."""
    now = utcnow()
    return {
        "_id": job_id,
        "owner": owner,
        "options": options.model_dump(mode="json"),
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
        "status": "queued",
        "documents_total": documents_total,
        "pages_total": 0,
        "pages_done": 0,
        "pages_failed": 0,
        "nodes": {},
        "started_at": None,
        "finished_at": None,
        "completed_event_sent": False,
    }


RESULT_PACKED = "result_json_z"
RESULT_COMPRESSION = 1  # zlib's fastest: 4 times smaller already, at under 1 ms a page


def result_fields(done: PageDone) -> Document:
    """A page's OCR result as `page_results` keeps it: its JSON, compressed, in one binary
    field. FerretDB turns a nested document into its own storage and back at about 45 ms a
    dense page read and 20 ms written; one binary field costs it under 2 ms, at a tenth of
    the size. Nothing queries inside a result."""
    packed = packed_result(done.result) if done.result else None
    return {"job_id": done.job_id, RESULT_PACKED: packed, "result_blob": done.result_blob}


def packed_result(result: PageText) -> bytes:
    """A result as `RESULT_PACKED` holds it."""
    return zlib.compress(result.model_dump_json().encode(), RESULT_COMPRESSION)


def stored_result(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The result a `page_results` record keeps, as written now (compressed JSON) or by an
    earlier version (a nested document, still read)."""
    packed = record.get(RESULT_PACKED)
    if packed is not None:
        return cast("dict[str, Any]", json.loads(zlib.decompress(packed)))
    return record.get("result")


def done_fields(done: PageDone) -> Document:
    """A done page's record in `pages` (its result is in `page_results`)."""
    return {
        "job_id": done.job_id,
        "doc_id": done.doc_id,
        "page": done.page,
        "status": "done",
        "node_id": done.node_id,
        "worker_id": done.worker_id,
        "attempts": done.attempts,
        "timings": done.timings.model_dump(),
        "busy_s": done.timings.total_s,
        "quality": done.quality.model_dump() if done.quality else None,
        "error": None,
        "finished_at": utcnow(),
    }


def attempt_fields(report: PageFailed | PageRetrying, status: PageStatus) -> Document:
    """A failed page's record, or a page's failed attempt while it is retried."""
    return {
        "job_id": report.job_id,
        "doc_id": report.doc_id,
        "page": report.page,
        "status": status,
        "node_id": report.node_id,
        "worker_id": report.worker_id,
        "attempts": report.attempts,
        "error": report.error,
        "finished_at": utcnow(),
    }


def outcome_records(report: PageDone | PageFailed) -> list[tuple[str, Document]]:
    """A page's outcome as the records it is stored as, by collection, each under the page's
    key: inserted, never updated, so a repeat finds the key taken and changes nothing. A done
    page's result goes first, so a page recorded done always has one."""
    key = page_key(report.job_id, report.doc_id, report.page)
    if isinstance(report, PageDone):
        return [("page_results", {"_id": key, **result_fields(report)}), ("pages", {"_id": key, **done_fields(report)})]
    return [("pages", {"_id": key, **attempt_fields(report, "failed")})]


def idempotency_claim_id(owner: str, key: str) -> str:
    """The claim's key, prefixed with the owner's length: owners and keys may both hold `/`,
    and `a/b` + `c` must not be the same claim as `a` + `b/c`."""
    return f"{len(owner)}:{owner}/{key}"


PLAN_STAGE = "plan"
"""The stage of a document's progress record written when ingest has planned it; its final
records are staged by round (0, then one more for each replay of the job's failed pages)."""


def document_progress_record(job_id: str, doc_id: str, stage: str | int, fields: Mapping[str, Any]) -> Document:
    """A document's progress as the aggregator stores it: inserted once per stage, never
    updated (FerretDB answers an update by reading the whole collection, an insert or a
    lookup by key at a constant cost). What is in between lives in the job record's
    `documents_active`."""
    key = document_key(job_id, doc_id)
    return {"_id": f"{key}@{stage}", "job_id": job_id, "doc_id": doc_id, "stage": str(stage), **fields}


def document_as_it_stands(
    uploaded: Document, job: Mapping[str, Any], active: Mapping[str, Document], progress: Mapping[str, Document]
) -> DocumentRecord:
    """A document as it stands: its upload, its plan, then its final record of the job's
    current round if it has one, else its live entry in the job record while it is being
    read, else its final record of an earlier round."""
    document = dict(uploaded)
    if PLAN_STAGE in progress:
        document.update(_progress_fields(progress[PLAN_STAGE]))
    rounds = sorted((int(stage) for stage in progress if stage != PLAN_STAGE), reverse=True)
    live = active.get(uploaded["doc_id"])
    if rounds and (live is None or rounds[0] >= int(job.get("replays") or 0)):
        document.update(_progress_fields(progress[str(rounds[0])]))
    elif live is not None:
        document.update({key: value for key, value in live.items() if key != "doc_id"})
    # The records merged are the ones the services wrote in these shapes (`models`).
    return cast("DocumentRecord", document)


def active_documents(job: Mapping[str, Any]) -> dict[str, Document]:
    """The documents being read, by id, from the job record's live list."""
    return {entry["doc_id"]: entry for entry in job.get("documents_active") or []}


def _progress_fields(record: Mapping[str, Any]) -> Document:
    return {key: value for key, value in record.items() if key not in ("_id", "job_id", "doc_id", "stage")}


def unplanned(document: Mapping[str, Any]) -> bool:
    """Uploaded but never announced by ingest (archive members are announced with their archive)."""
    return document.get("blob") is not None and document.get("pages") is None and not document.get("error")


def task_from_manifest(entry: Mapping[str, Any]) -> PageTask:
    """The page task a manifest entry recorded (without the store's own fields)."""
    return PageTask.model_validate({key: value for key, value in entry.items() if key in PageTask.model_fields})
