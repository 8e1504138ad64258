"""The OCR worker's metrics: pages read and failed, and how long reading took, by engine."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from bulkocr.metrics import SECONDS_BUCKETS

PAGES = Counter(
    "bulkocr_pages_total", "Pages this worker finished, by outcome (done, failed) and engine", ["outcome", "engine"]
)
OCR_SECONDS = Histogram(
    "bulkocr_ocr_seconds", "Time the engine took to read one page", ["engine"], buckets=SECONDS_BUCKETS
)
