"""Every NSQ topic, bound to the versioned, frozen pydantic model its messages carry.

This module is the contract between services: a producer publishes `Topic[M]` with an
`M`, a consumer decodes exactly that `M`. A body that does not validate is rejected at
the edge (`DecodeError`), never retried. Messages carry references to blobs, never the
bytes of a page, so they stay far below nsqd's 1 MiB message limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bulkocr.dead_letter import DeadLetter as DeadLetter
from bulkocr.page_model import PageQuality, PageText
from bulkocr.wire import DecodeError as DecodeError
from bulkocr.wire import M as M
from bulkocr.wire import Message as Message
from bulkocr.wire import MessageVersion as MessageVersion
from bulkocr.wire import Topic as Topic
from bulkocr.wire import utcnow as utcnow

EngineName = Literal["rapidocr", "tesseract", "paddle", "null"]
ENGINE_NAMES: tuple[EngineName, ...] = get_args(EngineName)
"""The OCR engines a job may name; each is registered once in the worker (`engines.ENGINES`)."""


def document_id(index: int) -> str:
    """The id of a job's `index`-th uploaded file (from 1): d0001, d0002... Messages name a
    job's documents by count, and every service can list their ids from it."""
    return f"d{index:04d}"


# --- payloads -------------------------------------------------------------------------


class JobOptions(Message):
    # 1.1: `callback_url`, where the notifier POSTs the job's webhooks (the gateway checks it).
    v: MessageVersion = "1.1"
    language: str | None = None
    dpi: int = Field(default=300, ge=50, le=1200)
    engine: str = "rapidocr"
    formats: tuple[str, ...] = ("txt", "json")
    auto_push: bool = False
    callback_url: str | None = Field(default=None, max_length=2000)


class DocumentRef(Message):
    """An uploaded file as the gateway records it in `documents` (never sent whole: a
    message names a document by its id, so its size does not grow with the job)."""

    # 1.1: `language`, the document's own languages (its upload part's Content-Language).
    v: MessageVersion = "1.1"
    doc_id: str
    filename: str
    blob: str = Field(description="blob-store key of the uploaded file")
    size: int = Field(ge=0)
    sha256: str
    duplicate_of: str | None = Field(default=None, description="doc_id of an identical file earlier in the job")
    language: str | None = Field(default=None, description="ISO 639-3 codes, comma-separated; else the job's")


class JobSubmitted(Message):
    """A job is stored with its documents (d0001, d0002, ...); the aggregator hands them to
    ingest a few at a time. The body names how many there are, never lists them."""

    job_id: str
    owner: str
    documents_total: int = Field(ge=0)


class DocumentTask(Message):
    """Split one stored document of a job into pages (ingest reads it by id)."""

    job_id: str
    doc_id: str
    again: bool = Field(default=False, description="handed out before: ingest looks for an earlier split")


class ArchiveMember(Message):
    doc_id: str
    filename: str


class DocumentPlanned(Message):
    """Ingest's word on one document: how many pages it has, or why it cannot be read.

    An archive (zip) has no pages itself: it names the documents it expanded into, each of
    which gets a DocumentPlanned of its own (with its filename, being new to the job)."""

    job_id: str
    doc_id: str
    filename: str | None = None
    pages: int = Field(default=0, ge=0)
    error: str | None = None
    members: tuple[ArchiveMember, ...] = ()
    duplicate_of: str | None = Field(default=None, description="doc_id of an identical file earlier in the job")


class PageTask(Message):
    job_id: str
    doc_id: str
    page: int = Field(ge=1)
    image: str = Field(description="blob-store key of the page image")
    dpi: int
    engine: str
    language: str | None = None


class _JobPages(Message):
    """A message of pages of one job (`pages_field` names them): at least one, each of the
    message's job. Checked once the pages validate, not with the field's `min_length`: that
    fails as well when a page of a newer minor version is refused for its new field, and the
    reader would then not retry it without that field."""

    pages_field: ClassVar[str] = "tasks"
    job_id: str

    @model_validator(mode="after")
    def _of_one_job(self) -> Self:
        pages: tuple[PageTask | PageDone, ...] = getattr(self, self.pages_field)
        if not pages:
            raise ValueError(f"{type(self).__name__} holds no page")
        if any(page.job_id != self.job_id for page in pages):
            raise ValueError(f"every page of {type(self).__name__} belongs to its job ({self.job_id})")
        return self


class PageBatch(_JobPages):
    """Pages of one job for one worker to read: a single page, unless the job's pages are
    read so fast that a message per page would cost more than the page (the aggregator then
    puts about `BULKOCR_AGGREGATOR_PAGE_BATCH_SECONDS` of reading in one message)."""

    tasks: tuple[PageTask, ...]


class PagesReady(_JobPages):
    """Ingest rendered and stored these pages of a document (at most a publish batch): the
    aggregator queues them for OCR within the job's window."""

    doc_id: str
    tasks: tuple[PageTask, ...]


class PageTimings(Message):
    orientation_s: float = 0.0
    recognition_s: float = 0.0
    total_s: float = 0.0


class PageReport(Message):
    """What a worker says of a page it read or tried: which page, where, after how many tries."""

    job_id: str
    doc_id: str
    page: int = Field(ge=1)
    node_id: str
    worker_id: str
    attempts: int = Field(ge=1)


class PageDone(PageReport):
    # 1.1: `quality`, the page's quality signals (a worker of 1.0 sends none).
    v: MessageVersion = "1.1"
    timings: PageTimings
    # The result travels inline unless it is large; then it is in the blob store.
    result: PageText | None = None
    result_blob: str | None = None
    quality: PageQuality | None = None


class PagesDone(_JobPages):
    """Pages of one batch that a worker read, reported together (a batch whose results would
    not fit one message is reported in several)."""

    pages_field = "pages"
    pages: tuple[PageDone, ...]


class PageAttempt(PageReport):
    """What a failed attempt at a page says: the page, and why."""

    error: str


class PageFailed(PageAttempt):
    """The page's last attempt failed, or its failure is its own fault: the page is failed."""


class PageRetrying(PageAttempt):
    """A page's attempt failed and it will be tried again: its attempts and last error, for the status."""


class NodeHeartbeat(Message):
    node_id: str
    worker_id: str
    engine: str
    in_flight: int = Field(ge=0)
    pages_done: int = Field(ge=0)
    pages_failed: int = Field(ge=0)
    at: datetime = Field(default_factory=utcnow)


JobStatus = Literal["queued", "processing", "completed", "partial", "failed", "cancelled"]
FINISHED_STATUSES: tuple[JobStatus, ...] = ("completed", "partial", "failed", "cancelled")
"""A job in one of these takes no more work (retry-failed can reopen it)."""


class JobCompleted(Message):
    job_id: str
    status: JobStatus


class JobRetry(Message):
    """Replay a job's failed pages (the ones that reached OCR and can be read again)."""

    job_id: str


class JobCancel(Message):
    """Stop a job: pages not yet read are dropped without OCR."""

    job_id: str


class ArchipelagoPush(Message):
    job_id: str
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    """`PushOptions` as a plain dict (defaults left out): the gateway validates it, the uploader parses it."""


PushStatus = Literal["completed", "partial", "failed", "staged"]


class PushFinished(Message):
    """A run of an Archipelago push of a job ended (how it went, in the uploader's words):
    the notifier tells the job's webhooks."""

    job_id: str
    status: PushStatus
    error: str | None = None
    at: datetime = Field(default_factory=utcnow)


class PushOptions(BaseModel):
    """What a push to Archipelago may ask for. Not a message itself: it travels in
    `ArchipelagoPush.options`, so a new option does not change the payload's schema."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # "ami" stages an AMI set (spreadsheet) for a curator instead of creating the objects.
    mode: Literal["jsonapi", "ami"] = "jsonapi"
    label: str | None = Field(default=None, min_length=1, max_length=255)
    ado_type: str = Field(default="Book", min_length=1, max_length=64)
    moderation_state: Literal["draft", "published"] = "published"
    text: bool = True
    # Upload every document again (and update its object) even if an earlier push completed it.
    force: bool = False

    def as_message_options(self) -> dict[str, str | int | bool]:
        return {key: value for key, value in self.model_dump(exclude_defaults=True).items() if value is not None}


JobEventKind = Literal["progress", "page", "document", "job", "outputs", "push"]


class JobEvent(Message):
    """One thing that happened to a job, as a listener (the web page, `bulkocr watch`) shows it."""

    kind: JobEventKind
    data: dict[str, Any] = Field(default_factory=dict)


class JobEvents(Message):
    """What happened to a job since the last message about it: the live feed the gateway
    streams to listeners (server-sent events). Best effort: a listener that missed some
    asks for a fresh snapshot, so nothing here is stored."""

    job_id: str
    at: datetime = Field(default_factory=utcnow)
    events: tuple[JobEvent, ...]


# --- topics ---------------------------------------------------------------------------

JOB_SUBMITTED = Topic("bulkocr.job.submitted", JobSubmitted)
DOCUMENT = Topic("bulkocr.document", DocumentTask)
DOCUMENT_PLANNED = Topic("bulkocr.job.planned", DocumentPlanned)
PAGES_READY = Topic("bulkocr.pages.ready", PagesReady)
# A batch is one page unless pages are quick (PageBatch). These replaced `bulkocr.page` and
# `bulkocr.page.done`, one page a message: a new topic, so a rolling upgrade loses nothing.
PAGE_BATCH = Topic("bulkocr.page.batch", PageBatch)
PAGES_DONE = Topic("bulkocr.pages.done", PagesDone)
PAGE_FAILED = Topic("bulkocr.page.failed", PageFailed)
PAGE_RETRYING = Topic("bulkocr.page.retrying", PageRetrying)
NODE_HEARTBEAT = Topic("bulkocr.node.heartbeat", NodeHeartbeat)
JOB_COMPLETED = Topic("bulkocr.job.completed", JobCompleted)
JOB_RETRY = Topic("bulkocr.job.retry", JobRetry)
JOB_CANCEL = Topic("bulkocr.job.cancel", JobCancel)
ARCHIPELAGO_PUSH = Topic("bulkocr.archipelago.push", ArchipelagoPush)
PUSH_FINISHED = Topic("bulkocr.push.finished", PushFinished)
# Ephemeral: nsqd keeps it in memory only, and every gateway reads it on a channel of its own.
JOB_EVENTS = Topic("bulkocr.job.events#ephemeral", JobEvents)

ALL_TOPICS: tuple[Topic[Any], ...] = (
    JOB_SUBMITTED,
    DOCUMENT,
    DOCUMENT_PLANNED,
    PAGES_READY,
    PAGE_BATCH,
    PAGES_DONE,
    PAGE_FAILED,
    PAGE_RETRYING,
    NODE_HEARTBEAT,
    JOB_COMPLETED,
    JOB_RETRY,
    JOB_CANCEL,
    ARCHIPELAGO_PUSH,
    PUSH_FINISHED,
    JOB_EVENTS,
)


# --- topology --------------------------------------------------------------------------

# The channel each consuming service reads its topics on (one per service: replicas of a
# service share its channel, so each message goes to one of them).
AGGREGATOR_CHANNEL = "aggregator"
INGEST_CHANNEL = "ingest"
OCR_CHANNEL = "ocr"
UPLOADER_CHANNEL = "uploader"
OUTPUTS_CHANNEL = "outputs"
NOTIFIER_CHANNEL = "notifier"

SUBSCRIPTIONS: tuple[tuple[Topic[Any], str], ...] = (
    (JOB_SUBMITTED, AGGREGATOR_CHANNEL),
    (DOCUMENT, INGEST_CHANNEL),
    (DOCUMENT_PLANNED, AGGREGATOR_CHANNEL),
    (PAGES_READY, AGGREGATOR_CHANNEL),
    (PAGE_BATCH, OCR_CHANNEL),
    (PAGES_DONE, AGGREGATOR_CHANNEL),
    (PAGE_FAILED, AGGREGATOR_CHANNEL),
    (PAGE_RETRYING, AGGREGATOR_CHANNEL),
    (NODE_HEARTBEAT, AGGREGATOR_CHANNEL),
    (JOB_COMPLETED, UPLOADER_CHANNEL),
    (JOB_COMPLETED, OUTPUTS_CHANNEL),
    (JOB_COMPLETED, NOTIFIER_CHANNEL),
    (JOB_RETRY, AGGREGATOR_CHANNEL),
    (JOB_CANCEL, AGGREGATOR_CHANNEL),
    (ARCHIPELAGO_PUSH, UPLOADER_CHANNEL),
    (PUSH_FINISHED, NOTIFIER_CHANNEL),
)
"""Every (topic, channel) that some service consumes: the whole queue topology. Channels are
created from it before anything is published (a channel made later misses what came before)."""


def dead_letter_topic(topic_name: str, suffix: str = ".dlq") -> Topic[DeadLetter]:
    """The topic where a consumer of `topic_name` keeps the messages it gave up on (an
    ephemeral topic's letters are ephemeral too: nsqd wants `#ephemeral` last)."""
    name, ephemeral, _ = topic_name.partition(EPHEMERAL)
    return Topic(f"{name}{suffix}{ephemeral}", DeadLetter)


EPHEMERAL = "#ephemeral"


KEEPER_CHANNEL = "keeper"
"""The aggregator's channel on every dead-letter topic: it keeps each letter in the database."""


def dead_letter_subscriptions(suffix: str = ".dlq") -> tuple[tuple[Topic[DeadLetter], str], ...]:
    """The dead-letter topic of every consumed topic, with the keeper's channel."""
    consumed = dict.fromkeys(topic.name for topic, _ in SUBSCRIPTIONS)
    return tuple((dead_letter_topic(name, suffix), KEEPER_CHANNEL) for name in consumed)
