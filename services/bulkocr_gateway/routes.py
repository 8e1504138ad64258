"""The gateway's HTTP routes. Handlers take what they need from the app's typed keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bulkocr import __version__, documents
from bulkocr.blobs import BlobStore
from bulkocr.contracts import JOB_SUBMITTED, DocumentRef, JobOptions, JobSubmitted, utcnow
from bulkocr.documents import page_numbers, page_result
from bulkocr.errors import PublishError
from bulkocr.mongo import DocumentRecord, JobRecord, OutputStore, PageRecord
from bulkocr.results import cached_formats
from bulkocr_gateway.http import error_response, fail, json_response
from bulkocr_gateway.keys import BLOBS, OWNER, PUBLISHER, SETTINGS, STORE
from bulkocr_gateway.models import Accepted, DocumentResult, Health, JobStatusView
from bulkocr_gateway.options import InvalidOptions, parse_options
from bulkocr_gateway.push import archipelago_result
from bulkocr_gateway.settings import GatewaySettings
from bulkocr_gateway.upload import UploadLimit, UploadRejected, job_blob_prefix, receive_form
from bulkocr_gateway.views import (
    document_complete,
    document_list,
    job_list,
    job_status_view,
    node_list,
    outputs_by_document,
    page_view,
    status_url,
)

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

COMPLETE_HEADER = "X-Bulkocr-Complete"
MAX_PER_PAGE = 100
MAX_DOCUMENTS_PER_PAGE = 1000
STATUS_DOCUMENTS = 20
"""The status shows this many documents, read by key (a status is polled every second or so,
and FerretDB answers each read by scanning the collection); the documents route pages
through all of them."""
_MAX_IDEMPOTENCY_KEY = 200

Stored = Mapping[str, Any]


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return json_response(Health(status="healthy", service="gateway", version=__version__))


# --- submitting a job ------------------------------------------------------------------


@routes.post("/api/bulk/jobs")
async def submit_job(request: web.Request) -> web.Response:
    """Stream the files into the blob store, record the job, queue it for ingest: 202."""
    store, owner = request.app[STORE], request[OWNER]
    key = _idempotency_key(request)
    if key is not None and (first := await store.find_job_by_idempotency_key(owner, key)):
        return await _replay(request, first)
    limit = await _upload_limit(request, owner)
    if request.content_length is not None and request.content_length > limit.limit:
        return error_response(413, limit.refusal)
    job_id = uuid.uuid4().hex
    if key is not None and (holder := await store.claim_idempotency_key(owner, key, job_id)) != job_id:
        # A concurrent request with the same key claimed it first: its job, or ask to try again.
        if first := await store.get_job(holder):
            return await _replay(request, first)
        return error_response(409, "a request with this Idempotency-Key is still being received; send it again")
    try:
        received = await _receive_job(request, job_id, owner, limit)
    except BaseException as error:
        if key is not None:
            await asyncio.shield(store.release_idempotency_key(owner, key, job_id))
        if isinstance(error, UploadRejected):
            return error_response(error.status, error.reason)
        raise
    try:
        await store.create_job(job_id, owner, received.options, received.documents, idempotency_key=key)
    except BaseException:
        await asyncio.shield(store.release_upload_bytes(job_id))  # no job, so nothing kept for it
        raise
    await _queue(request, JobSubmitted(job_id=job_id, owner=owner, documents_total=len(received.documents)))
    log.info("job_submitted", job_id=job_id, owner=owner, documents=len(received.documents))
    return _accepted(job_id)


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > _MAX_IDEMPOTENCY_KEY:
        fail(web.HTTPBadRequest, f"Idempotency-Key is longer than {_MAX_IDEMPOTENCY_KEY} characters")
    return key or None


@dataclass(frozen=True)
class ReceivedJob:
    documents: list[DocumentRef]
    options: JobOptions


async def _upload_limit(request: web.Request, owner: str) -> UploadLimit:
    """What this upload may bring: the per-upload limit, or less when the owner's stored
    uploads come near their quota."""
    settings = request.app[SETTINGS]
    used = await request.app[STORE].stored_bytes(owner)
    room = settings.max_bytes_per_owner - used
    if room < settings.max_upload_bytes:
        return UploadLimit(max(room, 0), _over_quota(owner, used, settings))
    limit = settings.max_upload_bytes
    return UploadLimit(limit, f"upload is larger than the limit of {limit} bytes")


def _over_quota(owner: str, used: int, settings: GatewaySettings) -> str:
    return (
        f"over the storage quota: {owner}'s jobs keep {used:,} bytes of uploads and the quota is"
        f" {settings.max_bytes_per_owner:,}; finished jobs free theirs when retention removes them"
    )


async def _receive_job(request: web.Request, job_id: str, owner: str, limit: UploadLimit) -> ReceivedJob:
    """The job as submitted, its bytes counted against the owner's quota; whatever went
    wrong, none of its uploads are left behind."""
    settings, blobs, store = request.app[SETTINGS], request.app[BLOBS], request.app[STORE]
    try:
        form = await receive_form(request, job_id=job_id, blobs=blobs, settings=settings, limit=limit)
        if not form.documents:
            raise UploadRejected(400, "no files: send one or more 'files' parts")
        options = parse_options(form.fields, settings)
        # Reserved now the size is known: two uploads that each fit the room left cannot both
        # be kept if together they do not.
        size = sum(document.size for document in form.documents)
        used = await store.reserve_upload_bytes(owner, job_id, size, settings.max_bytes_per_owner)
        if used is not None:
            raise UploadRejected(413, _over_quota(owner, used, settings))
    except InvalidOptions as invalid:
        await _delete_uploads(blobs, job_id)
        raise UploadRejected(400, str(invalid)) from None
    except BaseException:
        await _delete_uploads(blobs, job_id)
        raise
    return ReceivedJob(form.documents, options)


async def _delete_uploads(blobs: BlobStore, job_id: str) -> None:
    # Shielded: a client that hangs up mid-upload must not leave half a job behind.
    await asyncio.shield(blobs.delete_prefix(job_blob_prefix(job_id)))


async def _queue(request: web.Request, submitted: JobSubmitted) -> None:
    try:
        await request.app[PUBLISHER].publish(JOB_SUBMITTED, submitted)
    except PublishError as error:
        log.error("job_not_queued", job_id=submitted.job_id, error=str(error))
        fail(
            web.HTTPServiceUnavailable,
            f"job {submitted.job_id} is stored but could not be queued ({error}); "
            "send the request again with the same Idempotency-Key",
        )


async def _replay(request: web.Request, job: JobRecord) -> web.Response:
    """Answer a repeated submission with its first job. A job still queued is queued again:
    its first publish may have failed, and ingest skips documents it has already split."""
    if job["status"] == "queued":
        submitted = JobSubmitted(job_id=job["_id"], owner=job["owner"], documents_total=job["documents_total"])
        await _queue(request, submitted)
    return _accepted(job["_id"])


def _accepted(job_id: str) -> web.Response:
    url = status_url(job_id)
    return json_response(Accepted(job_id=job_id, status_url=url), status=202, headers={"Location": url})


# --- reading jobs ----------------------------------------------------------------------


async def owned_job(request: web.Request) -> JobRecord:
    """The job named in the path if the caller owns it; 404 otherwise (never 403: ids stay private)."""
    job_id = request.match_info["job_id"]
    job = await request.app[STORE].get_job(job_id, owner=request[OWNER])
    if job is None:
        fail(web.HTTPNotFound, f"no job {job_id}")
    return job


@routes.get("/api/bulk/status/{job_id}")
@routes.get("/api/bulk/jobs/{job_id}")
async def get_job_status(request: web.Request) -> web.Response:
    """Small whatever the job's size: the first documents, counts, the failed ones."""
    return json_response(await status_view(request, await owned_job(request)))


async def status_view(request: web.Request, job: JobRecord) -> JobStatusView:
    store = request.app[STORE]
    documents = await store.first_documents(job["_id"], int(job.get("documents_total") or 0), STATUS_DOCUMENTS)
    failed = await store.documents_by_id(job["_id"], job.get("documents_failed") or [])
    archipelago = await archipelago_result(request, job["_id"])
    shown = [d["doc_id"] for d in [*documents, *failed]]
    outputs = outputs_by_document(await OutputStore(store.db).for_documents(job["_id"], shown, cached_formats(job)))
    return job_status_view(job, documents, now=utcnow(), failed=failed, archipelago=archipelago, outputs=outputs)


@routes.get("/api/bulk/jobs/{job_id}/documents")
async def job_documents(request: web.Request) -> web.Response:
    """Every document of a job, a page at a time, in upload order."""
    job = await owned_job(request)
    page, per_page = paging(request, per_page=MAX_PER_PAGE, maximum=MAX_DOCUMENTS_PER_PAGE)
    store = request.app[STORE]
    documents = await store.list_documents(job["_id"], skip=(page - 1) * per_page, limit=per_page)
    outputs = outputs_by_document(
        await OutputStore(store.db).for_documents(job["_id"], [d["doc_id"] for d in documents], cached_formats(job))
    )
    total = await store.count_documents(job["_id"])
    body = document_list(job["_id"], documents, page=page, per_page=per_page, total=total, outputs=outputs)
    return json_response(body)


@routes.get("/api/bulk/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    page, per_page = paging(request, per_page=20)
    store, owner = request.app[STORE], request[OWNER]
    jobs = await store.list_jobs(owner, skip=(page - 1) * per_page, limit=per_page)
    total = await store.count_jobs(owner)
    return json_response(job_list(jobs, page=page, per_page=per_page, total=total))


def paging(request: web.Request, *, per_page: int, maximum: int = MAX_PER_PAGE) -> tuple[int, int]:
    """`page` and `per_page` from the query (per_page at most `maximum`), and how many to skip."""
    page = positive_int(request, "page", 1)
    size = positive_int(request, "per_page", per_page)
    if size > maximum:
        fail(web.HTTPBadRequest, f"per_page is at most {maximum}")
    return page, size


def positive_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, str(default))
    # At most 9 digits: larger numbers overflow what the database takes as a skip.
    if not raw.isdigit() or len(raw) > _MAX_DIGITS or int(raw) < 1:
        fail(web.HTTPBadRequest, f"{name} must be a whole number from 1 to {10**_MAX_DIGITS - 1}, not {raw[:20]!r}")
    return int(raw)


_MAX_DIGITS = 9


@routes.get("/api/nodes")
async def nodes(request: web.Request) -> web.Response:
    return json_response(node_list(await request.app[STORE].list_nodes(), now=utcnow()))


# --- one document's results ------------------------------------------------------------


async def _document_pages(request: web.Request) -> tuple[JobRecord, DocumentRecord, list[PageRecord]]:
    job = await owned_job(request)
    doc_id = request.match_info["doc_id"]
    store = request.app[STORE]
    document = await store.get_document(job["_id"], doc_id)
    if document is None:
        fail(web.HTTPNotFound, f"no document {doc_id} in job {job['_id']}")
    return job, document, await store.get_pages(job["_id"], doc_id)


@routes.get("/api/bulk/jobs/{job_id}/documents/{doc_id}/text")
async def get_document_text(request: web.Request) -> web.Response:
    """Plain text, pages in order split by form feeds; pages without text (failed, or not yet
    done) are empty. Until no more pages can arrive, `X-Bulkocr-Complete` is false. The same
    text as the `txt` download, read live."""
    job, document, pages = await _document_pages(request)
    text = await documents.document_text(document, pages, request.app[BLOBS])
    complete = document_complete(job, document, pages)
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={COMPLETE_HEADER: str(complete).lower()},
    )


@routes.get("/api/bulk/jobs/{job_id}/documents/{doc_id}/json")
async def document_json(request: web.Request) -> web.Response:
    """Every page with its boxes and confidences (`?page=N`: that page alone); pages without an
    outcome yet are `pending`."""
    job, document, pages = await _document_pages(request)
    by_number = {int(page["page"]): page for page in pages}
    numbers = page_numbers(document, pages)
    page_count = len(numbers)
    if "page" in request.query:
        wanted = positive_int(request, "page", 1)
        if wanted not in numbers:
            fail(web.HTTPBadRequest, f"document {document['doc_id']} has no page {wanted}")
        numbers = [wanted]
    views = []
    for number in numbers:
        page = by_number.get(number)
        views.append(page_view(number, page, await page_result(page, request.app[BLOBS])))
    body = DocumentResult(
        job_id=job["_id"],
        doc_id=document["doc_id"],
        filename=document.get("filename"),
        page_count=page_count,
        pages=views,
    )
    complete = document_complete(job, document, pages)
    return json_response(body, headers={COMPLETE_HEADER: str(complete).lower()})
