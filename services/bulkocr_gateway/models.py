"""The bodies of the gateway's HTTP responses. Only the gateway speaks HTTP, so they live here."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from bulkocr.page_model import Block, PageQuality


class Body(BaseModel):
    # Read from Mongo documents that other services may grow: tolerate extra fields.
    model_config = ConfigDict(extra="ignore")


class Accepted(Body):
    job_id: str
    status_url: str


class Progress(Body):
    pages_total: int
    pages_done: int
    pages_failed: int
    percent: float


class DocumentView(Body):
    doc_id: str
    filename: str | None
    pages: int | None
    status: str
    error: str | None
    duplicate_of: str | None = None
    # Heavy outputs built in the background, by format: "ready" or "failed: <cause>".
    outputs: dict[str, str] = {}


class NodeProgress(Body):
    pages_done: int = 0
    pages_failed: int = 0
    busy_seconds: float = 0.0
    last_seen: datetime | None = None


class ArchipelagoLink(Body):
    uuid: str
    url: str
    nid: int | None = None


class ArchipelagoObject(Body):
    doc_id: str
    filename: str | None = None
    uuid: str
    url: str
    state: str
    error: str | None = None
    nid: int | None = None


class ArchipelagoCounts(Body):
    total: int
    completed: int
    failed: int
    skipped: int
    pending: int


class ArchipelagoResult(Body):
    """Where a job's push to Archipelago stands: queued, uploading, completed, partial,
    failed, or staged (an AMI set waits for a curator)."""

    status: str
    mode: str
    attempts: int
    last_error: str | None
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    collection: ArchipelagoLink | None
    ami_set: ArchipelagoLink | None
    documents: ArchipelagoCounts
    objects: list[ArchipelagoObject]


class JobStatusView(Body):
    """A job's status, small whatever the job's size: its first documents (all of a small
    job), counts by document status, the failed ones, and where to page through the rest."""

    job_id: str
    status: str
    progress: Progress
    documents: list[DocumentView]
    documents_total: int
    documents_by_status: dict[str, int]
    failed_documents: list[DocumentView]
    failed_documents_total: int
    documents_url: str
    nodes: dict[str, NodeProgress]
    archipelago_result: ArchipelagoResult | None
    created_at: datetime
    updated_at: datetime
    eta_seconds: float | None


class JobSummary(Body):
    job_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    documents_total: int
    progress: Progress
    status_url: str


class DocumentList(Body):
    job_id: str
    documents: list[DocumentView]
    page: int
    per_page: int
    total: int
    next_url: str | None
    prev_url: str | None


class JobList(Body):
    jobs: list[JobSummary]
    page: int
    per_page: int
    total: int
    next_url: str | None
    prev_url: str | None


class PageView(Body):
    page: int
    status: str
    width: int | None = None
    height: int | None = None
    dpi: int | None = None
    rotation: int | None = None
    engine: str | None = None
    attempts: int | None = None
    timings: dict[str, float] | None = None
    node_id: str | None = None
    error: str | None = None
    quality: PageQuality | None = None
    blocks: list[Block] = []


class DocumentResult(Body):
    job_id: str
    doc_id: str
    filename: str | None
    # How many pages the document has so far, also when `pages` holds one (the viewer's next).
    page_count: int
    pages: list[PageView]


class WorkerView(Body):
    worker_id: str
    engine: str | None
    in_flight: int
    pages_done: int
    pages_failed: int
    last_seen: datetime | None


class NodeView(Body):
    node_id: str
    engine: str | None
    last_seen: datetime | None
    seconds_since_seen: float | None
    in_flight: int
    pages_done: int
    pages_failed: int
    workers: list[WorkerView]


class NodeTotals(Body):
    nodes: int
    workers: int
    in_flight: int
    pages_done: int
    pages_failed: int


class NodeList(Body):
    nodes: list[NodeView]
    totals: NodeTotals


class Health(Body):
    status: str
    service: str
    version: str
