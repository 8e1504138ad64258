"""Documents' progress written as the aggregator writes it, for tests of its readers."""

from __future__ import annotations

from typing import Any

from bulkocr.mongo import PLAN_STAGE, document_progress_record, insert_ignoring_duplicates
from tests.stores import SeedStore


async def set_document(store: SeedStore, job_id: str, doc_id: str, *, final: bool = False, **fields: Any) -> None:
    """Store a document's plan (pages, error, status …) or, with `final`, its final record."""
    stage = 0 if final else PLAN_STAGE
    await insert_ignoring_duplicates(store.document_progress, [document_progress_record(job_id, doc_id, stage, fields)])
