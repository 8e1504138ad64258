"""Archipelago uploader: pushes finished jobs into an Archipelago repository.

A push comes from the gateway (`bulkocr.archipelago.push`) or, for a job whose options ask
for it, from the aggregator's `bulkocr.job.completed`. Per job there is one collection
object, and per document one object holding its searchable PDF and its text; their UUIDs
are derived from (job, document), so every retry targets the same objects. Progress is
recorded per document (`ArchipelagoStore`) as it happens, so a restarted uploader carries
on where it stopped: it never uploads a finished document again nor creates a duplicate.

Outcomes: a refused login stops the job and is never retried (Archipelago locks an
account after 10 failures); a document Archipelago rejects (too large, invalid) fails on
its own while the others go on; a document that could not get through within the HTTP
retries fails too, and the message is then requeued so a later run tries it again.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr, ValidationError

from bulkocr.ami import (
    ami_csv,
    ami_rows,
    ami_set_uuid,
    collection_label,
    collection_uuid,
    document_label,
    is_pushable,
    not_pushable_reason,
    object_url,
    object_uuid,
    output_filename,
)
from bulkocr.blobs import make_blob_store
from bulkocr.contracts import (
    ARCHIPELAGO_PUSH,
    JOB_COMPLETED,
    PUSH_FINISHED,
    UPLOADER_CHANNEL,
    ArchipelagoPush,
    JobCompleted,
    JobEvent,
    PushFinished,
    PushOptions,
    utcnow,
)
from bulkocr.errors import BulkOcrError, PermanentError
from bulkocr.formats import OutputUnavailable
from bulkocr.job_events import tell_listeners
from bulkocr.mongo import ArchipelagoStore, JobStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_uploader.archipelago import AccessDenied, ArchipelagoClient, ArchipelagoError, Rejected, Unavailable
from bulkocr_uploader.metadata import ami_set_json, collection_metadata, document_metadata, node_attributes
from bulkocr_uploader.outcomes import Outcome, Summary, summarize
from bulkocr_uploader.outputs import FetchOutput, StoredOutputs
from bulkocr_uploader.settings import UploaderSettings

log = structlog.get_logger(__name__)


class PushIncomplete(BulkOcrError):
    """Some documents could not get through this time; the message is tried again later."""


@dataclass(frozen=True)
class Deps:
    settings: UploaderSettings
    store: JobStore
    pushes: ArchipelagoStore
    fetch_output: FetchOutput
    session: aiohttp.ClientSession
    # One push of a job at a time in this process (a push and an auto-push may meet).
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    # Where a push's state is announced to the job's listeners (none: not announced).
    publisher: NsqPublisher | None = None

    def client(self) -> ArchipelagoClient:
        settings = self.settings
        if not settings.url:
            raise Rejected("Archipelago is not configured: set BULKOCR_ARCHIPELAGO_URL")
        if not settings.user or not settings.password.get_secret_value():
            raise AccessDenied("no Archipelago credentials: set BULKOCR_ARCHIPELAGO_USER and _PASSWORD")
        authorization = SecretStr(aiohttp.encode_basic_auth(settings.user, settings.password.get_secret_value()))
        return ArchipelagoClient(self.session, settings.url, authorization, settings.policy())


@dataclass(frozen=True)
class JobPush:
    """One run of a push: what every document's push needs."""

    job: Mapping[str, Any]
    options: PushOptions
    client: ArchipelagoClient
    deps: Deps
    collection_nid: int

    @property
    def job_id(self) -> str:
        return str(self.job["_id"])


# --- handlers -------------------------------------------------------------------------


async def handle_push(push: ArchipelagoPush, delivery: Delivery, *, deps: Deps) -> None:
    try:
        options = PushOptions.model_validate(push.options)
    except ValidationError as error:
        raise PermanentError(f"invalid push options: {error}") from error
    await push_job(push.job_id, options, deps=deps)


async def handle_completed(completed: JobCompleted, delivery: Delivery, *, deps: Deps) -> None:
    """Push a finished job on its own if its options say `auto_push`."""
    job = await deps.store.get_job(completed.job_id)
    if job is None or not (job.get("options") or {}).get("auto_push"):
        return
    if (reason := not_pushable_reason(job)) is not None:
        log.info("auto_push_skipped", reason=reason)
        return
    await push_job(completed.job_id, PushOptions(), deps=deps)


async def push_job(job_id: str, options: PushOptions, *, deps: Deps) -> None:
    async with deps.locks[job_id]:
        job = await deps.store.get_job(job_id)
        if job is None:
            raise PermanentError(f"no job {job_id}")
        await _start_run(job_id, options, deps.pushes)
        await tell_listeners(deps.publisher, job_id, JobEvent(kind="push", data={"status": "uploading"}))
        try:
            summary = await _run(job, options, deps)
        except ArchipelagoError as error:
            await _finish_run(deps.pushes, job_id, Summary("failed", str(error)), deps.publisher)
            if isinstance(error, Unavailable):
                raise  # Archipelago may be back later
            raise PermanentError(str(error)) from error
        except Exception as error:
            await _finish_run(deps.pushes, job_id, Summary("failed", _describe(error)), deps.publisher)
            raise
        await _finish_run(deps.pushes, job_id, summary, deps.publisher)
        finished = JobEvent(kind="push", data={"status": summary.status, "error": summary.error})
        await tell_listeners(deps.publisher, job_id, finished)
    if summary.retry:
        raise PushIncomplete(summary.error or "some documents did not get through")


def _describe(error: BaseException) -> str:
    """What went wrong, from inside the task group that ran the documents."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


async def _start_run(job_id: str, options: PushOptions, pushes: ArchipelagoStore) -> None:
    previous = await pushes.get_push(job_id) or {}
    request = await pushes.get_request(job_id) or {}
    fields = {
        "status": "uploading",
        "mode": options.mode,
        "options": options.as_message_options(),
        "attempts": int(previous.get("attempts") or 0) + 1,
        "last_error": None,
        "request_id": request.get("request_id"),
        "started_at": utcnow(),
        "finished_at": None,
    }
    await pushes.set_push_fields(job_id, fields)


async def _finish_run(
    pushes: ArchipelagoStore, job_id: str, summary: Summary, publisher: NsqPublisher | None = None
) -> None:
    finished_at = utcnow()
    fields = {"status": summary.status, "last_error": summary.error, "finished_at": finished_at}
    await pushes.set_push_fields(job_id, fields)
    log.info("push_finished", status=summary.status, error=summary.error)
    if publisher is not None:
        # For the job's webhooks (the notifier). Not best effort: if it cannot be said, the
        # push is tried again, which redoes nothing that got through.
        finished = PushFinished(job_id=job_id, status=summary.status, error=summary.error, at=finished_at)
        await publisher.publish(PUSH_FINISHED, finished)


async def _run(job: Mapping[str, Any], options: PushOptions, deps: Deps) -> Summary:
    if (reason := not_pushable_reason(job)) is not None:
        raise Rejected(reason)
    client = deps.client()
    await client.preflight()
    documents = await deps.store.get_documents(str(job["_id"]))
    pushable = [document for document in documents if is_pushable(document)]
    await _register_objects(job, documents, deps)
    if not pushable:
        return Summary("failed", "no document has text to push")
    push = JobPush(job, options, client, deps, await _ensure_collection(client, job, options, deps))
    if options.mode == "ami":
        return summarize(await _stage_ami(push, documents), staged=True)
    return summarize(await _push_documents(push, pushable))


async def _register_objects(job: Mapping[str, Any], documents: Sequence[Mapping[str, Any]], deps: Deps) -> None:
    """List every document with its object's link from the start; those without text as skipped."""
    job_id, base = str(job["_id"]), deps.settings.links_base()
    listed = [document for document in documents if document.get("status") != "expanded"]
    for document in listed:
        doc_id = str(document["doc_id"])
        uuid = object_uuid(job_id, doc_id)
        fields: dict[str, Any] = {"uuid": uuid, "url": object_url(base, uuid), "filename": document.get("filename")}
        if not is_pushable(document):
            fields |= {"state": "skipped", "error": document.get("error") or "no text to push"}
        await deps.pushes.set_object_fields(job_id, doc_id, fields, on_insert={"state": "pending", "files": {}})
    await deps.pushes.set_push_fields(job_id, {"documents_total": len(listed)})


async def _ensure_collection(
    client: ArchipelagoClient, job: Mapping[str, Any], options: PushOptions, deps: Deps
) -> int:
    job_id, settings = str(job["_id"]), deps.settings
    uuid = collection_uuid(job_id)
    metadata = collection_metadata(collection_label(job_id, options), job_id)
    node = await client.upsert_node(settings.collection_bundle, uuid, node_attributes(metadata, options))
    collection = {"uuid": uuid, "nid": node.nid, "url": object_url(settings.links_base(), uuid)}
    await deps.pushes.set_push_fields(job_id, {"collection": collection})
    return node.nid


# --- documents ------------------------------------------------------------------------


async def _push_documents(push: JobPush, documents: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Push documents a few at a time; a refused login stops all of them."""
    limit = asyncio.Semaphore(push.deps.settings.concurrency)

    async def one(document: Mapping[str, Any]) -> Outcome:
        async with limit:
            return await push_document(push, document)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(document)) for document in documents]
    except* AccessDenied as denied:
        raise denied.exceptions[0] from None
    return [task.result() for task in tasks]


async def push_document(push: JobPush, document: Mapping[str, Any]) -> Outcome:
    doc_id = str(document["doc_id"])
    pushes = push.deps.pushes
    with structlog.contextvars.bound_contextvars(doc_id=doc_id):
        entry = await pushes.get_object(push.job_id, doc_id) or {}
        if entry.get("state") == "completed" and not push.options.force:
            return Outcome(doc_id, "completed")
        tries = int(entry.get("tries") or 0) + 1
        await pushes.set_object_fields(push.job_id, doc_id, {"state": "uploading", "tries": tries})
        try:
            nid = await _upload_and_upsert(push, document, dict(entry.get("files") or {}))
        except (Rejected, OutputUnavailable, Unavailable) as error:
            transient = isinstance(error, Unavailable)
            fields = {"state": "failed", "error": str(error), "transient": transient}
            await pushes.set_object_fields(push.job_id, doc_id, fields)
            log.warning("document_failed", error=str(error), transient=transient)
            return Outcome(doc_id, "failed", str(error), transient)
        fields = {"state": "completed", "nid": nid, "error": None, "transient": False, "pushed_at": utcnow()}
        await pushes.set_object_fields(push.job_id, doc_id, fields)
        log.info("document_pushed", nid=nid)
        return Outcome(doc_id, "completed")


async def _upload_and_upsert(push: JobPush, document: Mapping[str, Any], files: dict[str, Any]) -> int:
    formats = ("pdf", "txt") if push.options.text else ("pdf",)
    fids = {fmt: await _uploaded_fid(push, document, fmt, files) for fmt in formats}
    metadata = document_metadata(
        document,
        label=document_label(document),
        collection_nid=push.collection_nid,
        files=fids,
        options=push.options,
        # The document's own languages (its upload's Content-Language), else the job's.
        language=document.get("language") or (push.job.get("options") or {}).get("language"),
    )
    uuid = object_uuid(push.job_id, str(document["doc_id"]))
    attributes = node_attributes(metadata, push.options)
    node = await push.client.upsert_node(push.deps.settings.bundle, uuid, attributes)
    return node.nid


async def _uploaded_fid(push: JobPush, document: Mapping[str, Any], fmt: str, files: dict[str, Any]) -> int:
    """The file id of the document's `fmt` output: uploaded by an earlier run that was cut
    short, if still fresh (Archipelago keeps unreferenced uploads 6 h), or uploaded now."""
    doc_id, settings = str(document["doc_id"]), push.deps.settings
    recorded = files.get(fmt)
    fresh_after = utcnow() - timedelta(seconds=settings.file_max_age_s)
    if recorded and not push.options.force and recorded["uploaded_at"] > fresh_after:
        return int(recorded["fid"])
    data = await push.deps.fetch_output(push.job_id, doc_id, fmt)
    name = output_filename(doc_id, document.get("filename"), fmt)
    uploaded = await push.client.upload_file(settings.bundle, name, data)
    files[fmt] = {"fid": uploaded.fid, "uuid": uploaded.uuid, "filename": uploaded.filename, "uploaded_at": utcnow()}
    # Recorded at once, so a restart reuses the upload instead of leaving an orphan behind.
    await push.deps.pushes.set_object_fields(push.job_id, doc_id, {"files": files})
    return uploaded.fid


# --- AMI staging ----------------------------------------------------------------------


async def _stage_ami(push: JobPush, documents: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Stage an AMI set (spreadsheet) describing the objects, for a curator to process."""
    rows = ami_rows(push.job_id, documents, push.options, include_collection=False)
    set_id = ami_set_uuid(push.job_id)
    client, pushes = push.client, push.deps.pushes
    ami_set = await client.get_ami_set(set_id)
    if ami_set is None:
        name = f"{collection_label(push.job_id, push.options)} (bulkocr)"
        ami_set = await client.create_ami_set(set_id, name, ami_set_json(push.options, len(rows)))
    csv_file = await client.upload_ami_csv(set_id, f"bulkocr-{push.job_id}.csv", ami_csv(rows).encode())
    url = f"{push.deps.settings.links_base()}/amiset/{ami_set.id}"
    await pushes.set_push_fields(push.job_id, {"ami": {"uuid": set_id, "id": ami_set.id, "url": url}})
    log.info("ami_set_staged", ami_set=set_id, rows=len(rows), csv_fid=csv_file.fid)
    for row in rows:
        await pushes.set_object_fields(push.job_id, row.bulkocr_doc_id, {"state": "staged", "error": None})
    return [Outcome(row.bulkocr_doc_id, "staged") for row in rows]


# --- the service ----------------------------------------------------------------------


async def run(
    settings: UploaderSettings,
    nsq: NsqSettings,
    mongo: MongoSettings,
    blob: BlobSettings,
    *,
    stop: asyncio.Event | None = None,
    fetch_output: FetchOutput | None = None,
) -> None:
    """Consume pushes until `stop` (SIGTERM or SIGINT by default), then drain and close."""
    if not settings.url:
        log.warning("archipelago_not_configured", hint="set BULKOCR_ARCHIPELAGO_URL; pushes will fail")
    async with (
        connect_mongo(mongo) as db,
        NsqPublisher(nsq) as publisher,
        aiohttp.ClientSession(timeout=settings.timeout()) as session,
    ):
        store, pushes = JobStore(db), ArchipelagoStore(db)
        await pushes.ensure_indexes()
        outputs = fetch_output or StoredOutputs(store, make_blob_store(blob, db))
        deps = Deps(settings, store, pushes, outputs, session, publisher=publisher)
        in_flight = settings.max_in_flight
        subscriptions = [
            Subscription(ARCHIPELAGO_PUSH, UPLOADER_CHANNEL, functools.partial(handle_push, deps=deps), in_flight),
            Subscription(JOB_COMPLETED, UPLOADER_CHANNEL, functools.partial(handle_completed, deps=deps), in_flight),
        ]
        await serve(
            nsq=nsq,
            publisher=publisher,
            subscriptions=subscriptions,
            stop=stop,
            archipelago=settings.url or None,
            user=settings.user or None,
        )


def main() -> None:
    run_service("uploader", run, UploaderSettings, NsqSettings, MongoSettings, BlobSettings)
