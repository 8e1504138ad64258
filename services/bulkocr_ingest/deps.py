"""What ingest's handlers work with: settings, stores, the publisher and the split processes,
and the job a document belongs to."""

from __future__ import annotations

from dataclasses import dataclass

from bulkocr.blobs import BlobStore
from bulkocr.contracts import (
    JobOptions,
)
from bulkocr.mongo import IngestJobStore
from bulkocr.nsq import NsqPublisher
from bulkocr_ingest.settings import IngestSettings
from bulkocr_ingest.split_process import SplitProcesses


@dataclass(frozen=True)
class Deps:
    settings: IngestSettings
    store: IngestJobStore
    blobs: BlobStore
    publisher: NsqPublisher
    splitters: SplitProcesses


@dataclass(frozen=True)
class JobInfo:
    """What ingest needs of a job: its id and options."""

    job_id: str
    options: JobOptions
