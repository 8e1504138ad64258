"""What the gateway and the uploader share about a job's place in Archipelago: which jobs
and documents can be pushed, the deterministic UUIDs of their objects, their links, the
names of the files pushed, and the AMI spreadsheet that describes them.

The UUIDs are version 5 (name-based), so every retry, restart or later push of a job
targets the same objects: Archipelago answers a second create of one UUID with 409, never
with a duplicate. Pure functions only.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import PurePosixPath
from typing import Any

from bulkocr.contracts import PushOptions

# Fixed forever: changing it would give every job new objects on its next push.
NAMESPACE = uuid.UUID("0403700b-88ff-5107-9905-4bf3110910b5")

PUSHABLE_JOB_STATUSES = frozenset({"completed", "partial"})
# A document with at least one page of text; "expanded" archives hold no pages themselves.
PUSHABLE_DOCUMENT_STATUSES = frozenset({"completed", "partial"})

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120

Stored = Mapping[str, Any]


def collection_uuid(job_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"job:{job_id}"))


def object_uuid(job_id: str, doc_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{job_id}:{doc_id}"))


def ami_set_uuid(job_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"ami:{job_id}"))


def object_url(base_url: str, object_id: str) -> str:
    """The human link of an object (Archipelago's path alias pattern is /do/[node:uuid])."""
    return f"{base_url.rstrip('/')}/do/{object_id}"


def not_pushable_reason(job: Stored) -> str | None:
    """Why a job cannot be pushed yet, or None if it can."""
    status = job.get("status")
    if status in PUSHABLE_JOB_STATUSES:
        return None
    if status in ("failed", "cancelled"):
        return f"job {job['_id']} is {status}: it has no text to push"
    return f"job {job['_id']} is {status}: push it once it has finished"


def is_pushable(document: Stored) -> bool:
    return document.get("status") in PUSHABLE_DOCUMENT_STATUSES


def output_filename(doc_id: str, filename: str | None, extension: str) -> str:
    """A plain ASCII file name for a document's output (Archipelago's upload header takes no
    `filename*=` form), prefixed with the document id so names never collide within a job."""
    stem = PurePosixPath((filename or "").replace("\\", "/")).stem
    safe = _UNSAFE.sub("_", stem).strip("._")[:_MAX_NAME]
    return f"{doc_id}-{safe}.{extension}" if safe else f"{doc_id}.{extension}"


def collection_label(job_id: str, options: PushOptions) -> str:
    return options.label or f"bulkocr job {job_id}"


def document_label(document: Stored) -> str:
    return str(document.get("filename") or document["doc_id"])


# --- the AMI spreadsheet ------------------------------------------------------------------


@dataclass(frozen=True)
class AmiRow:
    """One row of an AMI set: one object. File cells name files in the set's ZIP."""

    node_uuid: str
    type: str
    label: str
    ismemberof: str
    documents: str
    texts: str
    bulkocr_job_id: str
    bulkocr_doc_id: str


AMI_COLUMNS = tuple(field.name for field in fields(AmiRow))

# A spreadsheet runs a cell that begins with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Cells holding what people typed: a file name as the label, a push's label and type. The
# others are UUIDs, generated ids and file names made of [A-Za-z0-9._-] after the document
# id, which begin with none of the triggers and which Archipelago must read exactly as written.
_FREE_TEXT_COLUMNS = frozenset({"type", "label"})


def ami_rows(
    job_id: str, documents: Iterable[Stored], options: PushOptions, *, include_collection: bool
) -> list[AmiRow]:
    """The rows of a job's AMI set: its pushable documents, each a member of the job's
    collection; the collection itself first when it is not created some other way."""
    collection = collection_uuid(job_id)
    rows: list[AmiRow] = []
    if include_collection:
        rows.append(AmiRow(collection, "Collection", collection_label(job_id, options), "", "", "", job_id, ""))
    for document in documents:
        if not is_pushable(document):
            continue
        doc_id = str(document["doc_id"])
        text = output_filename(doc_id, document.get("filename"), "txt") if options.text else ""
        rows.append(
            AmiRow(
                node_uuid=object_uuid(job_id, doc_id),
                type=options.ado_type,
                label=document_label(document),
                ismemberof=collection,
                documents=output_filename(doc_id, document.get("filename"), "pdf"),
                texts=text,
                bulkocr_job_id=job_id,
                bulkocr_doc_id=doc_id,
            )
        )
    return rows


def spreadsheet_text(text: str) -> str:
    """`text` as a cell a spreadsheet shows but never runs: a formula trigger at its start
    gets a single quote before it (OWASP's advice); anything else is left as it is."""
    return f"'{text}" if text.startswith(_FORMULA_TRIGGERS) else text


def ami_csv(rows: Iterable[AmiRow]) -> str:
    """The spreadsheet of `rows`. Curators open it in spreadsheet programs, so free-text cells
    are written with `spreadsheet_text`: a file named `=HYPERLINK(...).pdf` stays text."""
    out = io.StringIO()
    # CRLF (RFC 4180): the writer quotes a cell holding any character of the line terminator,
    # so a carriage return inside a file name stays in its cell instead of starting a row
    # (whose first cell could be a formula); with "\n" alone it went out unquoted.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AMI_COLUMNS)
    for row in rows:
        cells = zip(AMI_COLUMNS, astuple(row), strict=True)
        writer.writerow(spreadsheet_text(value) if column in _FREE_TEXT_COLUMNS else value for column, value in cells)
    return out.getvalue()
