"""Ingest's metrics: pages rendered and stored, and pages that could not be produced."""

from __future__ import annotations

from prometheus_client import Counter

PAGES_RENDERED = Counter("bulkocr_ingest_pages_rendered_total", "Page images rendered, stored and queued for OCR")
PAGES_UNREADABLE = Counter(
    "bulkocr_ingest_pages_unreadable_total", "Pages that could not be rendered (failed with a cause)"
)
