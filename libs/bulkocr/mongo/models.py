"""The shapes of the records services read back, as typed dictionaries: what pymongo returns,
with every key and its type known to the type checker, at no cost per read (a record is
read on paths that run for every status poll, so it is not parsed into objects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

from bulkocr.contracts import JobStatus


class NodeTally(TypedDict):
    """One node's share of a job."""

    pages_done: int
    pages_failed: int
    busy_seconds: float
    last_seen: datetime | None


class JobRecord(TypedDict):
    """A job as the gateway creates it (`queued`) and the aggregator keeps its progress."""

    _id: str
    owner: str
    options: dict[str, Any]  # JobOptions as JSON, read back with `wire.read_stored`
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    status: JobStatus
    documents_total: int
    pages_total: int
    pages_done: int
    pages_failed: int
    nodes: dict[str, NodeTally]
    started_at: datetime | None
    finished_at: datetime | None
    completed_event_sent: bool
    # Written by the aggregator once it has taken the job over.
    last_activity_at: NotRequired[datetime | None]
    replays: NotRequired[int]
    documents_by_status: NotRequired[dict[str, int]]
    documents_failed: NotRequired[list[str]]
    documents_failed_total: NotRequired[int]
    documents_active: NotRequired[list[dict[str, Any]]]
    tallied: NotRequired[bool]


DocumentStatus = Literal["queued", "processing", "completed", "partial", "failed", "expanded", "duplicate"]


class DocumentRecord(TypedDict):
    """A document as it stands: its upload (a file of the job, or a file found in one of its
    archives: no blob of its own) merged with its plan and progress."""

    _id: str
    job_id: str
    doc_id: str
    filename: str
    blob: str | None
    size: NotRequired[int]
    sha256: NotRequired[str]
    duplicate_of: NotRequired[str | None]
    language: NotRequired[str | None]
    """Its own languages (its upload part's Content-Language), which win over the job's."""
    # Its plan (ingest's announcement) and its progress (kept by the aggregator).
    pages: NotRequired[int | None]
    members: NotRequired[list[str]]
    status: NotRequired[DocumentStatus]
    error: NotRequired[str | None]
    pages_done: NotRequired[int]
    pages_failed: NotRequired[int]
    pages_error: NotRequired[str | None]


class PageRecord(TypedDict):
    """A page's outcome (done or failed) or its latest failed attempt while it is retried;
    a done page with its result (inline, or the key of a large one in the blob store)."""

    _id: str
    job_id: str
    doc_id: str
    page: int
    status: Literal["done", "failed", "retrying"]
    node_id: str
    worker_id: str
    attempts: int
    error: str | None
    finished_at: datetime
    timings: NotRequired[dict[str, float]]
    busy_s: NotRequired[float]
    quality: NotRequired[dict[str, Any] | None]
    result: NotRequired[dict[str, Any] | None]
    result_blob: NotRequired[str | None]


class WorkerBeat(TypedDict):
    """A worker's last heartbeat, as kept under its node."""

    in_flight: int
    pages_done: int
    pages_failed: int
    engine: str
    last_seen: datetime


class NodeRecord(TypedDict):
    """A node and its workers, from their heartbeats."""

    _id: str
    engine: str
    last_seen: datetime
    workers: dict[str, WorkerBeat]
