"""MongoDB access, the only package that imports pymongo (GridFS aside, in `blobs.py`):
`client` (connect, shared types and keys), `records` (what the services write), and one store
per concern: `jobs` (JobStore: the reads of a job every service shares) and a store per
service that writes them (`gateway`, `ingest`, `aggregator`), `pushes` (ArchipelagoStore), `outputs` (OutputStore),
`dead_letters` (DeadLetterStore), `webhooks` (WebhookStore).

Only features that both MongoDB and FerretDB v1 support are used: no transactions, no
change streams, no TTL indexes, and `$group` with `$sum` only. FerretDB applies an update
as read-modify-write, so concurrent `$inc` can lose counts, and only `_id` lookups are cheap
on a full database. So records are written once under a unique key (a page outcome, a
document's progress stage, an upload's reservation) and read by `_id`; tallies live in the
one process that writes them (the aggregator) and are recounted only as a check.
"""

from bulkocr.mongo.aggregator import AggregatorJobStore
from bulkocr.mongo.client import (
    DUPLICATE_KEY,
    Database,
    Document,
    PageStatus,
    connect_mongo,
    document_key,
    insert_ignoring_duplicates,
    page_key,
)
from bulkocr.mongo.dead_letters import DeadLetterStore
from bulkocr.mongo.gateway import GatewayJobStore
from bulkocr.mongo.ingest import IngestJobStore
from bulkocr.mongo.jobs import JobStore
from bulkocr.mongo.models import DocumentRecord, JobRecord, NodeRecord, NodeTally, PageRecord, WorkerBeat
from bulkocr.mongo.outputs import OutputStore
from bulkocr.mongo.pushes import ArchipelagoStore
from bulkocr.mongo.records import (
    PLAN_STAGE,
    attempt_fields,
    document_progress_record,
    done_fields,
    idempotency_claim_id,
    new_document,
    new_job,
    outcome_records,
    result_fields,
    stored_result,
    task_from_manifest,
    unplanned,
)
from bulkocr.mongo.webhooks import WebhookStore

__all__ = [
    "DUPLICATE_KEY",
    "PLAN_STAGE",
    "AggregatorJobStore",
    "ArchipelagoStore",
    "Database",
    "DeadLetterStore",
    "Document",
    "DocumentRecord",
    "GatewayJobStore",
    "IngestJobStore",
    "JobRecord",
    "JobStore",
    "NodeRecord",
    "NodeTally",
    "OutputStore",
    "PageRecord",
    "PageStatus",
    "WebhookStore",
    "WorkerBeat",
    "attempt_fields",
    "connect_mongo",
    "document_key",
    "document_progress_record",
    "done_fields",
    "idempotency_claim_id",
    "insert_ignoring_duplicates",
    "new_document",
    "new_job",
    "outcome_records",
    "page_key",
    "result_fields",
    "stored_result",
    "task_from_manifest",
    "unplanned",
]
