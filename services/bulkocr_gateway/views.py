"""Pure functions from stored documents (jobs, documents, pages, nodes) to response bodies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bulkocr.contracts import FINISHED_STATUSES
from bulkocr.mongo import DocumentRecord, JobRecord, NodeRecord, PageRecord, WorkerBeat
from bulkocr.page_model import PageQuality, PageText
from bulkocr_gateway.models import (
    ArchipelagoCounts,
    ArchipelagoLink,
    ArchipelagoObject,
    ArchipelagoResult,
    DocumentList,
    DocumentView,
    JobList,
    JobStatusView,
    JobSummary,
    NodeList,
    NodeProgress,
    NodeTotals,
    NodeView,
    PageView,
    Progress,
    WorkerView,
)

Stored = Mapping[str, Any]

FINISHED = frozenset(FINISHED_STATUSES)
# An archive's own document is "expanded": its pages belong to its member documents.
DOCUMENT_FINISHED = FINISHED | {"expanded"}


def status_url(job_id: str) -> str:
    return f"/api/bulk/status/{job_id}"


def jobs_url(page: int, per_page: int) -> str:
    return f"/api/bulk/jobs?page={page}&per_page={per_page}"


def progress_of(job: JobRecord) -> Progress:
    total = int(job.get("pages_total") or 0)
    done = int(job.get("pages_done") or 0)
    failed = int(job.get("pages_failed") or 0)
    if job.get("status") in FINISHED:
        percent = 100.0
    else:
        percent = round(min(100.0, 100.0 * (done + failed) / total), 1) if total else 0.0
    return Progress(pages_total=total, pages_done=done, pages_failed=failed, percent=percent)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def eta_seconds(job: JobRecord, now: datetime) -> float | None:
    """Seconds left at the job's pace so far; None until it is processing with pages finished."""
    started = job.get("started_at")
    progress = progress_of(job)
    finished = progress.pages_done + progress.pages_failed
    if job.get("status") != "processing" or not isinstance(started, datetime) or finished == 0:
        return None
    elapsed = (now - _aware(started)).total_seconds()
    if elapsed <= 0:
        return None
    remaining = max(progress.pages_total - finished, 0)
    return round(remaining / (finished / elapsed), 1)


def document_view(document: DocumentRecord, outputs: Mapping[str, str] | None = None) -> DocumentView:
    return DocumentView(
        doc_id=document["doc_id"],
        filename=document.get("filename"),
        pages=document.get("pages"),
        status=document.get("status") or "queued",
        error=document.get("error") or document.get("pages_error"),
        duplicate_of=document.get("duplicate_of"),
        outputs=dict(outputs or {}),
    )


def outputs_by_document(records: Iterable[Stored]) -> dict[str, dict[str, str]]:
    """The output builder's records as {doc_id: {format: "ready" | "failed: cause"}}."""
    found: dict[str, dict[str, str]] = {}
    for record in records:
        state = record["status"] if record["status"] != "failed" else f"failed: {record.get('error')}"
        found.setdefault(record["doc_id"], {})[record["format"]] = state
    return found


def documents_url(job_id: str, page: int = 1, per_page: int = 100) -> str:
    return f"/api/bulk/jobs/{job_id}/documents?page={page}&per_page={per_page}"


def documents_by_status(job: JobRecord) -> dict[str, int]:
    """How many of the job's documents are in each status (all queued until the aggregator
    has written its counts)."""
    counts = job.get("documents_by_status")
    if counts is None:
        return {"queued": int(job.get("documents_total") or 0)}
    return {str(status): int(n) for status, n in counts.items() if n}


def job_status_view(
    job: JobRecord,
    documents: Iterable[DocumentRecord],
    *,
    now: datetime,
    failed: Iterable[DocumentRecord] = (),
    archipelago: ArchipelagoResult | None = None,
    outputs: Mapping[str, Mapping[str, str]] | None = None,
) -> JobStatusView:
    nodes = {node_id: NodeProgress.model_validate(values) for node_id, values in (job.get("nodes") or {}).items()}
    by_status = documents_by_status(job)
    return JobStatusView(
        job_id=job["_id"],
        status=job["status"],
        progress=progress_of(job),
        documents=[document_view(document, (outputs or {}).get(document["doc_id"])) for document in documents],
        documents_total=sum(by_status.values()),
        documents_by_status=by_status,
        failed_documents=[document_view(document, (outputs or {}).get(document["doc_id"])) for document in failed],
        failed_documents_total=int(job.get("documents_failed_total") or 0),
        documents_url=documents_url(job["_id"]),
        nodes=nodes,
        archipelago_result=archipelago,
        created_at=job["created_at"],
        updated_at=job["updated_at"],
        eta_seconds=eta_seconds(job, now),
    )


def document_list(
    job_id: str,
    documents: Iterable[DocumentRecord],
    *,
    page: int,
    per_page: int,
    total: int,
    outputs: Mapping[str, Mapping[str, str]] | None = None,
) -> DocumentList:
    return DocumentList(
        job_id=job_id,
        documents=[document_view(document, (outputs or {}).get(document["doc_id"])) for document in documents],
        page=page,
        per_page=per_page,
        total=total,
        next_url=documents_url(job_id, page + 1, per_page) if page * per_page < total else None,
        prev_url=documents_url(job_id, page - 1, per_page) if page > 1 else None,
    )


def job_summary(job: JobRecord) -> JobSummary:
    return JobSummary(
        job_id=job["_id"],
        status=job["status"],
        created_at=job["created_at"],
        updated_at=job["updated_at"],
        finished_at=job.get("finished_at"),
        documents_total=int(job.get("documents_total") or 0),
        progress=progress_of(job),
        status_url=status_url(job["_id"]),
    )


def job_list(jobs: Iterable[JobRecord], *, page: int, per_page: int, total: int) -> JobList:
    return JobList(
        jobs=[job_summary(job) for job in jobs],
        page=page,
        per_page=per_page,
        total=total,
        next_url=jobs_url(page + 1, per_page) if page * per_page < total else None,
        prev_url=jobs_url(page - 1, per_page) if page > 1 else None,
    )


# --- nodes ---------------------------------------------------------------------------


def _worker_view(worker_id: str, worker: WorkerBeat) -> WorkerView:
    return WorkerView(
        worker_id=worker_id,
        engine=worker.get("engine"),
        in_flight=int(worker.get("in_flight") or 0),
        pages_done=int(worker.get("pages_done") or 0),
        pages_failed=int(worker.get("pages_failed") or 0),
        last_seen=worker.get("last_seen"),
    )


def node_view(node: NodeRecord, *, now: datetime) -> NodeView:
    workers = [_worker_view(worker_id, worker) for worker_id, worker in sorted((node.get("workers") or {}).items())]
    last_seen = node["last_seen"]
    age = round((now - _aware(last_seen)).total_seconds(), 1)
    return NodeView(
        node_id=node["_id"],
        engine=node.get("engine"),
        last_seen=last_seen,
        seconds_since_seen=age,
        in_flight=sum(w.in_flight for w in workers),
        pages_done=sum(w.pages_done for w in workers),
        pages_failed=sum(w.pages_failed for w in workers),
        workers=workers,
    )


def node_list(nodes: Iterable[NodeRecord], *, now: datetime) -> NodeList:
    views = [node_view(node, now=now) for node in nodes]
    totals = NodeTotals(
        nodes=len(views),
        workers=sum(len(v.workers) for v in views),
        in_flight=sum(v.in_flight for v in views),
        pages_done=sum(v.pages_done for v in views),
        pages_failed=sum(v.pages_failed for v in views),
    )
    return NodeList(nodes=views, totals=totals)


# --- one document's pages --------------------------------------------------------------


def document_complete(job: JobRecord, document: DocumentRecord, pages: Sequence[PageRecord]) -> bool:
    """True when no more page outcomes will arrive for this document."""
    if job.get("status") in FINISHED or document.get("status") in DOCUMENT_FINISHED or document.get("error"):
        return True
    planned = document.get("pages")
    return isinstance(planned, int) and len(pages) >= planned


def page_view(number: int, page: PageRecord | None, result: PageText | None) -> PageView:
    """One page for the JSON route: `pending` until it has an outcome."""
    if page is None:
        return PageView(page=number, status="pending")
    timings = {k: v for k, v in (page.get("timings") or {}).items() if k != "v"} or None
    view = PageView(
        page=number,
        status=page["status"],
        attempts=page.get("attempts"),
        timings=timings,
        node_id=page.get("node_id"),
        error=page.get("error"),
    )
    stored_quality = page.get("quality")
    if result is None:
        return (
            view.model_copy(update={"quality": PageQuality.model_validate(stored_quality)}) if stored_quality else view
        )
    return view.model_copy(
        update={
            # pages stored by a worker older than quality signals: worked out from the result
            "quality": PageQuality.model_validate(stored_quality) if stored_quality else PageQuality.of(result),
            "width": result.width,
            "height": result.height,
            "dpi": result.dpi,
            "rotation": result.rotation,
            "engine": result.engine,
            "blocks": list(result.blocks),
        }
    )


# --- Archipelago ---------------------------------------------------------------------

PUSH_FINISHED = frozenset({"completed", "partial", "failed", "staged"})


def _push_status(request: Stored | None, push: Stored | None) -> str:
    """The uploader's status, except that a request it has not begun to serve is `queued`
    (the uploader notes the id of the latest request when a run starts)."""
    if push is None:
        return "queued"
    newer_request = request is not None and request.get("request_id") != push.get("request_id")
    if newer_request and push.get("status") in PUSH_FINISHED:
        return "queued"
    return str(push.get("status") or "queued")


def _link(value: object) -> ArchipelagoLink | None:
    return ArchipelagoLink.model_validate(value) if isinstance(value, Mapping) else None


def _counts(objects: Sequence[Stored]) -> ArchipelagoCounts:
    states = [str(entry.get("state")) for entry in objects]
    done = sum(state in ("completed", "staged") for state in states)
    failed, skipped = states.count("failed"), states.count("skipped")
    return ArchipelagoCounts(
        total=len(states), completed=done, failed=failed, skipped=skipped, pending=len(states) - done - failed - skipped
    )


def archipelago_view(
    request: Stored | None, push: Stored | None, objects: Sequence[Stored]
) -> ArchipelagoResult | None:
    """A job's push as the status route shows it; None if no push was ever asked for."""
    if request is None and push is None:
        return None
    status = _push_status(request, push)
    run, asked = push or {}, request or {}
    return ArchipelagoResult(
        status=status,
        mode=str(run.get("mode") or asked.get("options", {}).get("mode") or "jsonapi"),
        attempts=int(run.get("attempts") or 0),
        last_error=run.get("last_error"),
        requested_at=asked.get("requested_at"),
        started_at=run.get("started_at"),
        finished_at=run.get("finished_at"),
        collection=_link(run.get("collection")),
        ami_set=_link(run.get("ami")),
        documents=_counts(objects),
        objects=[ArchipelagoObject.model_validate(entry) for entry in objects],
    )
