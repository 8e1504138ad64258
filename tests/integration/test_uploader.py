"""The Archipelago uploader end to end: a push asked of the real gateway travels over real
nsqd to the real uploader, which keeps its progress in real FerretDB and pushes into the
fake Archipelago (tests/fakes/archipelago.py), under scripted faults. Every test ends with
each document present exactly once in the fake, with its PDF, and a status that tells the truth."""

from __future__ import annotations

import asyncio
import csv
import email.utils
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bulkocr.ami import collection_uuid, object_uuid
from bulkocr.blobs import BlobStore, make_blob_store
from bulkocr.contracts import (
    ARCHIPELAGO_PUSH,
    JOB_COMPLETED,
    UPLOADER_CHANNEL,
    DocumentRef,
    JobCompleted,
    JobOptions,
    utcnow,
)
from bulkocr.mongo import Database
from bulkocr.nsq import NsqAdmin, NsqPublisher
from bulkocr.settings import BlobSettings, MongoSettings, NsqSettings
from bulkocr_client import push as push_cli
from bulkocr_gateway.app import create_app
from bulkocr_gateway.keys import Deps
from bulkocr_gateway.settings import GatewaySettings
from bulkocr_uploader.outputs import StoredOutputs
from bulkocr_uploader.service import run
from bulkocr_uploader.settings import UploaderSettings
from tests.fakes.archipelago import PASSWORD, USER, FakeArchipelago
from tests.integration.test_gateway import page_done, page_text
from tests.ocr_quality import TEST_DATA
from tests.progress import set_document
from tests.stores import SeedStore
from tests.waiting import eventually

pytestmark = pytest.mark.integration

PDF_PATH = TEST_DATA / "c02-22.pdf"
PDF = PDF_PATH.read_bytes()
TOKENS = {"alice": "alice-token", "bob": "bob-token"}
ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
PUSH_URL = "/api/archipelago/push-bulk-ami"
FINISHED = {"completed", "partial", "failed", "staged"}
ROOT = Path(__file__).parents[2]

Client = TestClient[web.Request, web.Application]
StartUploader = Callable[..., Awaitable[Callable[[], Awaitable[None]]]]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeArchipelago]:
    async with FakeArchipelago() as running:
        yield running


@pytest.fixture
def blobs(db: Database) -> BlobStore:
    return make_blob_store(BlobSettings(), db)


async def start_gateway(store: SeedStore, blobs: BlobStore, publisher: NsqPublisher, archipelago_url: str) -> Client:
    settings = GatewaySettings.model_validate({"api_tokens": TOKENS, "archipelago_url": archipelago_url})
    client: Client = TestClient(TestServer(create_app(Deps(settings, store, blobs, publisher))))
    await client.start_server()
    return client


@pytest.fixture
async def gateway(store, blobs, publisher, fake) -> AsyncIterator[Client]:
    client = await start_gateway(store, blobs, publisher, fake.url)
    yield client
    await client.close()


def uploader_settings(fake: FakeArchipelago, **overrides: object) -> UploaderSettings:
    values: dict[str, object] = {
        "url": fake.url,
        "user": USER,
        "password": PASSWORD,
        "retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "read_timeout_s": 5.0,
        "concurrency": 2,
        **overrides,
    }
    return UploaderSettings.model_validate(values)


async def channel_stats(admin: NsqAdmin, topic: str) -> dict[str, Any]:
    """nsqd's counters of our channel on `topic` (all zero before it exists; nsqd then
    answers `"topics": null`, which NsqAdmin.channel_stats does not expect)."""
    for entry in (await admin.stats(topic)).get("topics") or []:
        for channel in entry["channels"] if entry["topic_name"] == topic else []:
            if channel["channel_name"] == UPLOADER_CHANNEL:
                found: dict[str, Any] = channel
                return found
    return {"client_count": 0, "requeue_count": 0, "depth": 0, "in_flight_count": 0}


async def uploader_clients(admin: NsqAdmin) -> int:
    return int((await channel_stats(admin, ARCHIPELAGO_PUSH.name))["client_count"])


@pytest.fixture
async def start_uploader(nsq_settings, mongo_settings, nsq_admin, store, blobs) -> AsyncIterator[StartUploader]:
    """Run the uploader service in this process (real NSQ, real database); the PDF of every
    document is tests/data/c02-22.pdf (unless `real_outputs`), its text the stored page
    results. Returns a stop function."""
    texts = StoredOutputs(store, blobs)
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def fetch_output(job_id: str, doc_id: str, fmt: str) -> bytes:
        return PDF if fmt == "pdf" else await texts(job_id, doc_id, fmt)

    async def start(settings: UploaderSettings, *, real_outputs: bool = False) -> Callable[[], Awaitable[None]]:
        # The gateway and the aggregator make these channels as they first publish to them;
        # the uploader finds nsqd through nsqlookupd once the topics exist.
        for topic in (ARCHIPELAGO_PUSH, JOB_COMPLETED):
            await nsq_admin.create_channel(topic.name, UPLOADER_CHANNEL)
        stop = asyncio.Event()
        outputs = None if real_outputs else fetch_output
        service = run(settings, nsq_settings, mongo_settings, BlobSettings(), stop=stop, fetch_output=outputs)
        task = asyncio.create_task(service)
        running.append((stop, task))

        async def subscribed() -> bool:
            if task.done():
                task.result()  # raises what stopped it
            return await uploader_clients(nsq_admin) == 1

        await eventually(subscribed, what="the uploader subscribed")

        async def stop_it() -> None:
            stop.set()
            await task
            await eventually(lambda: _no_clients(nsq_admin), what="the uploader gone")

        return stop_it

    yield start
    for stop, task in running:
        stop.set()
        await task


async def _no_clients(admin: NsqAdmin) -> bool:
    return await uploader_clients(admin) == 0


# --- jobs and pushes --------------------------------------------------------------------------


async def finished_job(
    store: SeedStore, documents: int = 3, *, owner: str = "alice", auto_push: bool = False, status: str = "completed"
) -> tuple[str, list[str]]:
    """A job as the pipeline leaves it: documents of two OCR'd pages each, the job finished."""
    job_id = uuid.uuid4().hex
    refs = tuple(
        DocumentRef(
            doc_id=f"d{n:04d}",
            filename=f"scans/minutes {1920 + n}.pdf",
            blob=f"jobs/{job_id}/uploads/d{n:04d}",
            size=len(PDF),
            sha256="0" * 64,
            language="ell" if n == 2 else None,  # a document of its own language
        )
        for n in range(1, documents + 1)
    )
    options = JobOptions(language="en", auto_push=auto_push)
    await store.create_job(job_id, owner, options, refs)
    for ref in refs:
        await set_document(store, job_id, ref.doc_id, pages=2, status="completed", pages_done=2, final=True)
        for page in (1, 2):
            result = page_text(f"{ref.doc_id} page {page}")
            await store.record_outcome(page_done(job_id, ref.doc_id, page, result=result))
    await store.set_job_fields(job_id, {"status": status, "pages_total": 2 * documents, "finished_at": utcnow()})
    return job_id, [ref.doc_id for ref in refs]


async def push(gateway: Client, job_id: str, **options: object) -> None:
    response = await gateway.post(PUSH_URL, json={"job_id": job_id, **options}, headers=ALICE)
    assert response.status == 202, await response.text()
    assert response.headers["Location"] == f"/api/bulk/status/{job_id}"


async def archipelago_result(gateway: Client, job_id: str) -> Any:
    response = await gateway.get(f"/api/bulk/status/{job_id}", headers=ALICE)
    assert response.status == 200
    return (await response.json())["archipelago_result"]


async def wait_result(gateway: Client, job_id: str, wanted: set[str] = FINISHED, timeout_s: float = 20) -> Any:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen["result"] = await archipelago_result(gateway, job_id)
        return seen["result"] is not None and seen["result"]["status"] in wanted

    await eventually(reached, timeout_s=timeout_s, what=f"push of {job_id} to reach {wanted} (last: {seen})")
    return seen["result"]


def assert_pushed(fake: FakeArchipelago, job_id: str, doc_ids: list[str], result: Any) -> None:
    """Every document is in the fake exactly once, with its PDF and text, a member of the
    job's collection; and the status says so, with the right links."""
    collection = fake.nodes[collection_uuid(job_id)]
    assert collection.bundle == "digital_object_collection"
    mine = [node for node in fake.objects() if node.sbf["bulkocr"]["job_id"] == job_id]
    assert sorted(node.uuid for node in mine) == sorted(object_uuid(job_id, doc_id) for doc_id in doc_ids)
    for doc_id in doc_ids:
        node = fake.nodes[object_uuid(job_id, doc_id)]
        assert node.sbf["ismemberof"] == [collection.nid]
        (pdf,) = fake.files_of(node, "documents")
        (text,) = fake.files_of(node, "texts")
        assert pdf.data == PDF
        assert pdf.mime == "application/pdf"
        assert pdf.permanent
        assert text.data.decode() == f"{doc_id} page 1\f{doc_id} page 2"
        assert text.permanent
        assert f"urn:uuid:{pdf.uuid}" in node.sbf["as:document"]
        assert node.title == node.sbf["label"] == f"scans/minutes {1920 + int(doc_id[1:])}.pdf"
    assert fake.dangling == []
    assert result["status"] == "completed", result
    assert result["last_error"] is None
    assert result["collection"] == {
        "uuid": collection.uuid,
        "url": f"{fake.url}/do/{collection.uuid}",
        "nid": collection.nid,
    }
    links = {entry["doc_id"]: (entry["state"], entry["url"]) for entry in result["objects"]}
    assert links == {d: ("completed", f"{fake.url}/do/{object_uuid(job_id, d)}") for d in doc_ids}
    assert result["documents"]["completed"] == result["documents"]["total"] == len(doc_ids)


def created(fake: FakeArchipelago, bundle: str = "digital_object") -> list[str]:
    """UUIDs of the objects created (201), in order."""
    return [str(e.target) for e in fake.requests("POST", "node_create", bundle=bundle) if e.status == 201]


async def requeues(admin: NsqAdmin) -> int:
    return int((await channel_stats(admin, ARCHIPELAGO_PUSH.name))["requeue_count"])


# --- the tests --------------------------------------------------------------------------------


async def test_a_push_creates_one_collection_and_one_object_per_document(gateway, store, fake, start_uploader):
    """A clean push of a 3-document job: one collection, one object per document with its PDF,
    text and language (the job's, or the document's own), integer file ids (presave keeps
    them), every write with Basic auth and no cookie, no retries; the status reports completed
    with every link; pushing again changes nothing."""
    job_id, doc_ids = await finished_job(store)
    await start_uploader(uploader_settings(fake))
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, result)
    assert result["attempts"] == 1
    assert result["mode"] == "jsonapi"
    writes = [entry for entry in fake.log if entry.method != "GET"]
    assert all(entry.authorized and not entry.has_cookie for entry in writes)
    # Nothing failed or was retried: the only non-2xx answers are the lookups before creates.
    assert [e.route for e in fake.log if e.status >= 300] == ["node_get"] * (1 + len(doc_ids))
    assert len(fake.requests("POST", "file_upload")) == 2 * len(doc_ids)
    node = fake.nodes[object_uuid(job_id, doc_ids[0])]
    assert node.sbf["language_iso639_3"] == "eng"
    assert fake.nodes[object_uuid(job_id, doc_ids[1])].sbf["language_iso639_3"] == "ell"
    assert node.sbf["ap:entitymapping"]["entity:file"] == ["documents", "texts"]
    assert all(isinstance(fid, int) for fid in node.sbf["documents"] + node.sbf["texts"])

    uploads_before = len(fake.requests("POST", "file_upload"))
    await push(gateway, job_id)
    again = await wait_result(gateway, job_id)
    assert again["attempts"] == 2
    assert_pushed(fake, job_id, doc_ids, again)
    assert len(fake.requests("POST", "file_upload")) == uploads_before
    assert sorted(created(fake)) == sorted(object_uuid(job_id, d) for d in doc_ids)


async def test_bulkocr_push_follows_the_push_and_prints_every_link(gateway, store, fake, start_uploader):
    """`bulkocr push JOB --wait` queues the push, prints a line as it moves and, at the end,
    the collection's and every object's link; exit code 0. A job not finished gives 2."""
    job_id, doc_ids = await finished_job(store, 2)
    await start_uploader(uploader_settings(fake))
    out, err = io.StringIO(), io.StringIO()
    url = str(gateway.make_url("/"))
    request = push_cli.PushRequest(job_id, url, "alice-token", {"ado_type": "Document"}, wait=True, poll_s=0.05)
    assert await push_cli.push_command(request, out=out, err=err) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"push of job {job_id} queued"
    assert "completed: 2/2 documents pushed, 0 failed" in lines
    assert f"collection: {fake.url}/do/{collection_uuid(job_id)}" in lines
    for doc_id in doc_ids:
        assert f"{doc_id} completed: {fake.url}/do/{object_uuid(job_id, doc_id)}" in lines
    assert fake.nodes[object_uuid(job_id, doc_ids[0])].sbf["type"] == "Document"

    running_id, _ = await finished_job(store, status="processing")
    request = push_cli.PushRequest(running_id, url, "alice-token", {}, wait=True)
    assert await push_cli.push_command(request, out=io.StringIO(), err=err) == 2
    assert "409" in err.getvalue()


async def test_the_pushed_pdf_is_rendered_from_the_stored_pages(gateway, store, blobs, fake, start_uploader):
    """Without a PDF handed in, the uploader pushes the searchable PDF rendered from the job's
    page images and OCR (bulkocr.results): its text layer reads as the OCR did."""
    job_id, (doc_id,) = await finished_job(store, 1)
    for page in (1, 2):
        image = io.BytesIO()
        Image.new("L", (100, 200), 255).save(image, format="PNG")
        key = f"jobs/{job_id}/pages/{doc_id}/{page:05d}.png"
        await blobs.put(key, image.getvalue())
        await store.add_page_tasks([{"job_id": job_id, "doc_id": doc_id, "page": page, "image": key}])
    await start_uploader(uploader_settings(fake), real_outputs=True)
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert result["status"] == "completed", result
    (pdf,) = fake.files_of(fake.nodes[object_uuid(job_id, doc_id)], "documents")
    document = pdfium.PdfDocument(pdf.data)
    texts = [document[n].get_textpage().get_text_range() for n in range(len(document))]
    assert [" ".join(text.split()) for text in texts] == [f"{doc_id} page 1", f"{doc_id} page 2"]


async def test_push_requests_are_checked_before_anything_is_queued(gateway, store, blobs, publisher):
    """Bad bodies and options get 400, an unknown job or another owner's 404, a job that is
    not finished (or has nothing to push) 409 with its reason, and a gateway without
    Archipelago 503; the AMI spreadsheet route checks the same; nothing is recorded."""
    job_id, _ = await finished_job(store)
    running_id, _ = await finished_job(store, status="processing")
    failed_id, _ = await finished_job(store, status="failed")
    cases = [
        (b"not json", 400, "JSON"),
        (json.dumps({"options": 1}).encode(), 400, "job_id"),
        (json.dumps({"job_id": job_id, "mode": "ftp"}).encode(), 400, "mode"),
        (json.dumps({"job_id": job_id, "colour": "red"}).encode(), 400, "colour"),
        (json.dumps({"job_id": "nope"}).encode(), 404, "no job nope"),
        (json.dumps({"job_id": running_id}).encode(), 409, "processing"),
        (json.dumps({"job_id": failed_id}).encode(), 409, "failed"),
    ]
    for body, status, reason in cases:
        response = await gateway.post(PUSH_URL, data=body, headers={**ALICE, "Content-Type": "application/json"})
        assert response.status == status, body
        assert reason in (await response.json())["error"]
    response = await gateway.post(PUSH_URL, json={"job_id": job_id}, headers=BOB)
    assert response.status == 404
    assert (await gateway.get(f"/api/bulk/jobs/{running_id}/ami.csv", headers=ALICE)).status == 409
    assert (await gateway.get(f"/api/bulk/jobs/{job_id}/ami.csv", headers=BOB)).status == 404
    assert await archipelago_result(gateway, job_id) is None

    unconfigured = await start_gateway(store, blobs, publisher, "")
    try:
        response = await unconfigured.post(PUSH_URL, json={"job_id": job_id}, headers=ALICE)
        assert response.status == 503
        assert "BULKOCR_ARCHIPELAGO_URL" in (await response.json())["error"]
    finally:
        await unconfigured.close()


async def test_a_refused_login_fails_the_job_at_once_and_is_never_retried(
    gateway, store, fake, start_uploader, nsq_admin
):
    """A wrong password is caught by the preflight (one request, no write); a 401 in the
    middle of a push stops it with no request after it; neither is retried, by HTTP or by
    NSQ. With the right password a new push completes every document exactly once."""
    job_id, doc_ids = await finished_job(store)
    requeued = await requeues(nsq_admin)
    stop = await start_uploader(uploader_settings(fake, password="wrong", concurrency=1))
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert result["status"] == "failed"
    assert "credentials" in result["last_error"]
    assert [(e.method, e.route, e.authorized) for e in fake.log] == [("GET", "entry", False)]
    await stop()
    assert await requeues(nsq_admin) == requeued

    await start_uploader(uploader_settings(fake, concurrency=1))
    fault = fake.fail("POST", "file_upload", 401, nth=2)
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert result["status"] == "failed", result
    assert "401" in result["last_error"]
    assert fault.used == 1
    assert fake.log[-1].status == 401
    assert await requeues(nsq_admin) == requeued

    await push(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, await wait_result(gateway, job_id))
    assert fake.failed_logins == 1  # the wrong password once; the scripted 401 is not a login


async def test_a_conflict_on_create_turns_into_an_update(gateway, store, db, fake, start_uploader):
    """When the objects exist but the uploader does not know it (its records lost, and a
    stale GET says 404), the create gets Archipelago's 409 and becomes a PATCH: no duplicate."""
    job_id, doc_ids = await finished_job(store)
    await start_uploader(uploader_settings(fake))
    await push(gateway, job_id)
    await wait_result(gateway, job_id)
    for name in ("archipelago", "archipelago_objects"):
        await db[name].delete_many({})
    fake.fail("GET", "node_get", 404, bundle="digital_object", times=len(doc_ids))
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, result)
    conflicts = [e.target for e in fake.requests("POST", "node_create", bundle="digital_object") if e.status == 409]
    assert sorted(conflicts) == sorted(object_uuid(job_id, d) for d in doc_ids)
    patched = [e.target for e in fake.requests("PATCH", "node_patch", bundle="digital_object") if e.status == 200]
    assert sorted(patched) == sorted(conflicts)
    assert all(fake.nodes[object_uuid(job_id, d)].revision == 2 for d in doc_ids)


async def test_rejected_documents_fail_alone_and_are_not_retried(gateway, store, fake, start_uploader, nsq_admin):
    """A 413 (nginx HTML) on one document's PDF and a 422 on another's create fail those two
    documents, each after one try and with a clear message, while the third is pushed; the
    push is partial and not requeued. A later push completes only the two."""
    job_id, doc_ids = await finished_job(store)
    requeued = await requeues(nsq_admin)
    await start_uploader(uploader_settings(fake, concurrency=1))
    fake.fail("POST", "file_upload", 413, nth=3)  # d0002's PDF
    fake.fail("POST", "node_create", 422, nth=2, bundle="digital_object")  # d0003's object
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id)
    assert result["status"] == "partial"
    states = {e["doc_id"]: (e["state"], e["error"] or "") for e in result["objects"]}
    assert states["d0001"] == ("completed", "")
    assert states["d0002"][0] == "failed"
    assert "larger than Archipelago accepts (413" in states["d0002"][1]
    assert states["d0003"][0] == "failed"
    assert "(422)" in states["d0003"][1]
    assert "d0002" in result["last_error"]
    assert "d0003" in result["last_error"]
    assert len(fake.requests("POST", "file_upload", filename="d0002-minutes_1922.pdf")) == 1
    assert len(fake.requests("POST", "node_create", target=object_uuid(job_id, "d0003"))) == 1
    assert await requeues(nsq_admin) == requeued

    uploads = len(fake.requests("POST", "file_upload"))
    await push(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, await wait_result(gateway, job_id))
    # d0002 uploads both files; d0003 reuses the uploads its rejected create referenced.
    assert len(fake.requests("POST", "file_upload")) == uploads + 2


async def test_429_waits_as_long_as_retry_after_says(gateway, store, fake, start_uploader):
    """A 429 with `Retry-After: 1` and one with an HTTP-date a few seconds ahead are each
    retried only after that wait (the configured backoff is 10 ms), then succeed."""
    job_id, doc_ids = await finished_job(store, 2)
    await start_uploader(uploader_settings(fake))
    fake.fail("POST", "file_upload", 429, nth=1, headers={"Retry-After": "1"})
    # An HTTP-date has whole seconds: three whole seconds ahead, the refusal (sent within a
    # second or two) still asks for a wait of more than one.
    later = email.utils.formatdate(math.ceil(time.time()) + 3, usegmt=True)
    fake.fail("POST", "file_upload", 429, nth=2, headers={"Retry-After": later})
    await push(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, await wait_result(gateway, job_id))
    for refused in [e for e in fake.requests("POST", "file_upload") if e.status == 429]:
        retry = next(e for e in fake.log if e.filename == refused.filename and e.at > refused.at)
        assert retry.at - refused.at >= 0.9, refused.filename


async def test_server_errors_are_retried_then_left_for_a_later_run(gateway, store, fake, start_uploader, nsq_admin):
    """500, 502 (HTML) and 503 are retried with backoff; a create answered 502 is looked up
    before it is sent again. An upload failing on all 4 tries (1 + 3 retries) fails its
    document for this run; NSQ redelivers the push and the next run completes it."""
    job_id, doc_ids = await finished_job(store)
    requeued = await requeues(nsq_admin)
    await start_uploader(uploader_settings(fake, concurrency=1))
    fake.fail("POST", "file_upload", 500, nth=1)
    fake.fail("POST", "file_upload", 503, nth=3, headers={"Retry-After": "0"})
    fake.fail("POST", "node_create", 502, nth=1, bundle="digital_object")
    fake.fail("POST", "file_upload", 500, nth=5, times=4)  # every try of d0002's PDF
    await push(gateway, job_id)
    result = await wait_result(gateway, job_id, {"completed"})
    assert_pushed(fake, job_id, doc_ids, result)
    assert result["attempts"] == 2
    assert await requeues(nsq_admin) == requeued + 1
    tries = [e.status for e in fake.requests("POST", "file_upload", filename="d0002-minutes_1922.pdf")]
    assert tries == [500, 500, 500, 500, 201]
    first = object_uuid(job_id, "d0001")
    assert [(e.method, e.status) for e in fake.log if e.target == first] == [
        ("GET", 404),
        ("POST", 502),
        ("GET", 404),
        ("POST", 201),
    ]


async def test_a_lost_answer_to_a_create_is_checked_before_anything_is_sent_again(gateway, store, fake, start_uploader):
    """Archipelago commits a create and then answers 504 (nginx gave up on the slow save):
    the uploader looks the object up, finds it and is done - one POST, no 409, no duplicate."""
    job_id, doc_ids = await finished_job(store)
    await start_uploader(uploader_settings(fake))
    fake.fail("POST", "node_create", 504, nth=1, commit=True, bundle="digital_object_collection")
    fake.fail("POST", "node_create", 504, nth=2, commit=True, bundle="digital_object")
    await push(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, await wait_result(gateway, job_id))
    for target in [collection_uuid(job_id), *(object_uuid(job_id, d) for d in doc_ids)]:
        assert len(fake.requests("POST", "node_create", target=target)) == 1
    assert not [e for e in fake.log if e.status == 409]
    lost = [e for e in fake.requests("POST", "node_create") if e.status == 504]
    assert len(lost) == 2
    for entry in lost:
        after = [e for e in fake.log if e.target == entry.target and e.at > entry.at]
        assert [(e.method, e.status) for e in after] == [("GET", 200)]


async def test_slow_answers_time_out_without_duplicates(gateway, store, fake, start_uploader):
    """Answers slower than the client's timeout - an upload, a create that commits late and
    a create whose answer comes late - are retried or looked up: every document once."""
    job_id, doc_ids = await finished_job(store)
    await start_uploader(uploader_settings(fake, read_timeout_s=0.5))
    fake.fail("POST", "file_upload", None, nth=1, delay_s=1.5)
    fake.fail("POST", "node_create", None, nth=1, delay_s=1.5, bundle="digital_object")
    fake.fail("POST", "node_create", None, nth=2, delay_s=1.5, commit=True, bundle="digital_object")
    await push(gateway, job_id)
    assert_pushed(fake, job_id, doc_ids, await wait_result(gateway, job_id))


async def test_a_killed_uploader_resumes_without_duplicates(
    gateway, store, fake, nsq_settings, mongo_settings, nsq_admin, tmp_path
):
    """The uploader process is killed (SIGKILL) while Archipelago is saving the second
    document's object; a new process carries on: the finished document is left alone, the
    second one's recorded uploads are reused and its object updated, not created again.
    The password comes from a Docker secret file and appears in no log."""
    job_id, doc_ids = await finished_job(store)
    await nsq_admin.create_channel(ARCHIPELAGO_PUSH.name, UPLOADER_CHANNEL)
    secret = "s3cret-" + uuid.uuid4().hex[:8]
    fake.password = secret
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bulkocr_archipelago_password").write_text(secret + "\n")
    env = uploader_environment(fake, nsq_settings, mongo_settings, tmp_path / "secrets")
    hang = fake.fail("POST", "node_create", None, nth=2, commit=True, delay_s=60, bundle="digital_object")
    log_path = tmp_path / "uploader.log"
    first = start_process(env, log_path)
    try:
        await push(gateway, job_id)
        await eventually(lambda: hang.used == 1, what="the second create to hang")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert object_uuid(job_id, "d0002") in fake.nodes  # committed, but never answered
    second = start_process(env, log_path)
    try:
        result = await wait_result(gateway, job_id, {"completed"}, timeout_s=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert_pushed(fake, job_id, doc_ids, result)
    assert result["attempts"] == 2
    assert len(fake.requests("POST", "file_upload")) == 2 * len(doc_ids)
    for doc_id in doc_ids:  # one create each, the hung one included
        assert len(fake.requests("POST", "node_create", target=object_uuid(job_id, doc_id))) == 1
    assert not [e for e in fake.log if e.status == 409]
    d2 = object_uuid(job_id, "d0002")
    assert [(e.method, e.status) for e in fake.log if e.target == d2][-2:] == [("GET", 200), ("PATCH", 200)]
    assert secret not in log_path.read_text()


def uploader_environment(
    fake: FakeArchipelago, nsq: NsqSettings, mongo: MongoSettings, secrets: Path
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BULKOCR_")}
    env.update(
        {
            "BULKOCR_ARCHIPELAGO_URL": fake.url,
            "BULKOCR_ARCHIPELAGO_USER": USER,
            "BULKOCR_ARCHIPELAGO_BACKOFF_BASE_S": "0.01",
            "BULKOCR_ARCHIPELAGO_CONCURRENCY": "1",
            "BULKOCR_SECRETS_DIR": str(secrets),
            "BULKOCR_NSQ_NSQD_TCP_ADDRESSES": ",".join(nsq.nsqd_tcp_addresses),
            "BULKOCR_NSQ_NSQD_HTTP_ADDRESS": nsq.nsqd_http_address,
            "BULKOCR_NSQ_LOOKUPD_HTTP_ADDRESSES": ",".join(nsq.lookupd_http_addresses),
            "BULKOCR_NSQ_LOOKUPD_POLL_INTERVAL_S": "1",
            "BULKOCR_NSQ_BACKOFF_BASE_S": "0.2",
            # nsqd redelivers what a dead consumer held once this runs out (it is touched while alive).
            "BULKOCR_NSQ_MSG_TIMEOUT_S": "2",
            "BULKOCR_MONGO_URL": mongo.url,
            "BULKOCR_MONGO_DATABASE": mongo.database,
            "BULKOCR_LOG_FORMAT": "json",
            "BULKOCR_LOG_LEVEL": "debug",
        }
    )
    return env


def start_process(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.uploader_process", str(PDF_PATH)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


async def test_finished_jobs_that_ask_for_it_are_pushed_on_their_own(
    gateway, store, fake, start_uploader, publisher, nsq_admin
):
    """`job.completed` for a job with auto_push pushes it with default options; the same
    event for a job without it changes nothing."""
    auto_id, doc_ids = await finished_job(store, 2, auto_push=True)
    manual_id, _ = await finished_job(store, 2)
    await start_uploader(uploader_settings(fake))
    await publisher.publish(JOB_COMPLETED, JobCompleted(job_id=manual_id, status="completed"))
    await publisher.publish(JOB_COMPLETED, JobCompleted(job_id=auto_id, status="completed"))
    assert_pushed(fake, auto_id, doc_ids, await wait_result(gateway, auto_id))

    async def drained() -> bool:
        stats = await channel_stats(nsq_admin, JOB_COMPLETED.name)
        return int(stats["depth"]) == 0 and int(stats["in_flight_count"]) == 0

    await eventually(drained, what="job.completed handled")
    assert await archipelago_result(gateway, manual_id) is None
    assert collection_uuid(manual_id) not in fake.nodes


async def test_ami_mode_stages_a_set_for_a_curator(gateway, store, fake, start_uploader):
    """mode=ami creates the collection and stages an AMI set whose spreadsheet lists every
    document under its object UUID; no document object is created (a curator processes the
    set); the status says staged with the set's link; the gateway serves the same rows."""
    job_id, doc_ids = await finished_job(store, 2)
    await start_uploader(uploader_settings(fake))
    await push(gateway, job_id, mode="ami", label="Board minutes", ado_type="Document")
    result = await wait_result(gateway, job_id)
    assert result["status"] == "staged", result
    assert result["mode"] == "ami"
    (ami,) = fake.ami_sets.values()
    assert result["ami_set"]["url"] == f"{fake.url}/amiset/{ami.id}"
    assert json.loads(ami.set)["adomapping"]["uuid"] == {"uuid": "node_uuid"}
    (csv_fid,) = ami.source_data
    rows = list(csv.DictReader(io.StringIO(fake.files[csv_fid].data.decode())))
    collection = fake.nodes[collection_uuid(job_id)]
    assert collection.title == "Board minutes"
    assert [(r["node_uuid"], r["type"], r["ismemberof"]) for r in rows] == [
        (object_uuid(job_id, d), "Document", collection.uuid) for d in doc_ids
    ]
    assert rows[0]["documents"] == "d0001-minutes_1921.pdf"
    assert rows[0]["texts"] == "d0001-minutes_1921.txt"
    assert fake.objects() == []
    assert {e["state"] for e in result["objects"]} == {"staged"}

    response = await gateway.get(f"/api/bulk/jobs/{job_id}/ami.csv", headers=ALICE)
    assert response.status == 200
    assert response.content_type == "text/csv"
    served = list(csv.DictReader(io.StringIO(await response.text())))
    assert served[0]["node_uuid"] == collection.uuid
    assert served[0]["type"] == "Collection"
    assert served[1:] == rows
