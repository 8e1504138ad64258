"""Ingest's settings (`BULKOCR_INGEST_*`): limits, batching, split processes."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr_ingest.split import SplitLimits
from bulkocr_ingest.split_process import ProcessLimits


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_INGEST_", extra="ignore")

    max_pages: int = Field(default=5_000, gt=0)
    max_page_pixels: int = Field(default=80_000_000, gt=0)
    zip_max_total_bytes: int = Field(default=4 << 30, gt=0)
    zip_max_members: int = Field(default=10_000, gt=0)
    publish_batch: int = Field(default=50, gt=0)
    # Documents split at once by one ingest process (each in a split process of its own; run
    # more replicas for more).
    max_in_flight: int = Field(default=2, gt=0)
    # Each split process's address space (RLIMIT_AS): a PDF page at the 80 MP pixel limit needs
    # about 600 MB; a document that needs more fails with the cause instead of OOM-killing ingest.
    split_memory_mb: int = Field(default=2048, ge=128)
    # Longest a split process may take to count a document's pages or to produce one page.
    split_timeout_s: float = Field(default=300.0, gt=0)
    # Niceness of the split processes: pages are rendered ahead of OCR, which has the CPU
    # first where both run on one node (0: equal shares).
    split_nice: int = Field(default=10, ge=0, le=19)
    # An archive member's name (archive name / path inside it) is cut to this many characters:
    # a ZIP may hold 64 KiB names, and names travel in messages and in one record per archive.
    max_filename_chars: int = Field(default=255, ge=16)
    work_dir: Path | None = None

    def process_limits(self) -> ProcessLimits:
        return ProcessLimits(
            memory_bytes=self.split_memory_mb << 20, call_timeout_s=self.split_timeout_s, nice=self.split_nice
        )

    def limits(self) -> SplitLimits:
        return SplitLimits(
            max_pages=self.max_pages,
            max_page_pixels=self.max_page_pixels,
            zip_max_total_bytes=self.zip_max_total_bytes,
            zip_max_members=self.zip_max_members,
        )
