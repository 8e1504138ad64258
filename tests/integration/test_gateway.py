"""The HTTP gateway against real nsqd and FerretDB: uploads, auth, status, results, the CLI."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bulkocr import __version__
from bulkocr.blobs import make_blob_store
from bulkocr.contracts import JOB_SUBMITTED, JobSubmitted, NodeHeartbeat, PageDone, PageFailed, PageTimings, utcnow
from bulkocr.mongo import Database, JobRecord
from bulkocr.nsq import Delivery, NsqAdmin, consuming
from bulkocr.page_model import Block, Box, Line, PageQuality, PageText, Word
from bulkocr.settings import BlobSettings
from bulkocr_client import submit as submit_cli
from bulkocr_gateway.app import create_app
from bulkocr_gateway.keys import Deps
from bulkocr_gateway.page import PAGE
from bulkocr_gateway.settings import GatewaySettings
from tests.integration.conftest import GATEWAY_TOKENS
from tests.progress import set_document
from tests.stores import SeedStore
from tests.waiting import eventually

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}

Client = TestClient[web.Request, web.Application]


def files_form(*files: tuple[str, bytes], **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, content in files:
        form.add_field("files", io.BytesIO(content), filename=name, content_type="application/octet-stream")
    for key, value in fields.items():
        form.add_field(key, value)
    return form


async def submit(api: Client, *files: tuple[str, bytes], headers=None, **fields: str) -> str:
    response = await api.post("/api/bulk/jobs", data=files_form(*files, **fields), headers=headers or ALICE)
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"])


async def stored_blob_count(db: Database) -> int:
    return await db["blobs.files"].count_documents({})


def page_text(*lines: str, confidence: float = 0.9) -> PageText:
    box = Box(x0=10, y0=10, x1=90, y1=30)
    words = [
        Line(text=t, box=box, confidence=confidence, words=[Word(text=t, box=box, confidence=confidence)])
        for t in lines
    ]
    return PageText(
        width=100, height=200, dpi=300, engine="null", blocks=[Block(box=box, lines=words)] if lines else []
    )


def page_done(
    job_id: str, doc_id: str, page: int, *, result: PageText | None = None, result_blob: str | None = None
) -> PageDone:
    timings = PageTimings(recognition_s=0.5, total_s=0.7)
    quality = PageQuality.of(result) if result is not None else None
    return PageDone(
        quality=quality,
        job_id=job_id,
        doc_id=doc_id,
        page=page,
        node_id="n1",
        worker_id="w1",
        attempts=1,
        timings=timings,
        result=result,
        result_blob=result_blob,
    )


async def test_requests_without_a_known_bearer_token_get_401(api):
    """No Authorization header, another scheme, or an unknown token: 401 with a JSON reason."""
    for headers in ({}, {"Authorization": "Basic YWxpY2U6eA=="}, {"Authorization": "Bearer nobody"}):
        response = await api.get("/api/bulk/jobs", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]
    response = await api.post("/api/bulk/jobs", data=files_form(("a.png", b"x")))
    assert response.status == 401


async def test_submission_streams_files_into_blobs_and_queues_the_job(
    api, nsq_admin: NsqAdmin, nsq_settings, publisher, blobs, store
):
    """A POST answers 202 with Location, stores each file under its doc id with the right
    sha256 and size (a second copy of a file as its duplicate), records the job for its
    owner, and puts a job.submitted on NSQ that counts the documents, never lists them."""
    channel = f"test-{uuid.uuid4().hex[:8]}#ephemeral"
    await nsq_admin.create_channel(JOB_SUBMITTED.name, channel)
    big = os.urandom(700 * 1024)  # several upload chunks
    response = await api.post(
        "/api/bulk/jobs",
        data=files_form(
            ("scans/big.tif", big),
            ("small.png", b"png bytes"),
            ("again/big.tif", big),
            dpi="200",
            language="en",
            engine="null",
        ),
        headers=ALICE,
    )
    assert response.status == 202
    body = await response.json()
    job_id = body["job_id"]
    assert uuid.UUID(hex=job_id).hex == job_id
    assert body["status_url"] == f"/api/bulk/status/{job_id}" == response.headers["Location"]

    received: list[JobSubmitted] = []

    async def keep(message: JobSubmitted, delivery: Delivery) -> None:
        if message.job_id == job_id:
            received.append(message)

    async with consuming(JOB_SUBMITTED, channel, keep, publisher=publisher, settings=nsq_settings):
        await eventually(lambda: bool(received), what="our job.submitted message")
    assert received == [JobSubmitted(job_id=job_id, owner="alice", documents_total=3)]
    documents = {d["doc_id"]: d for d in await store.get_documents(job_id)}
    assert [(d["doc_id"], d["filename"], d["size"], d["duplicate_of"]) for d in documents.values()] == [
        ("d0001", "scans/big.tif", len(big), None),
        ("d0002", "small.png", 9, None),
        ("d0003", "again/big.tif", len(big), "d0001"),
    ]
    first = documents["d0001"]
    assert first["blob"] == f"jobs/{job_id}/uploads/d0001"
    assert first["sha256"] == hashlib.sha256(big).hexdigest()
    assert await blobs.get(first["blob"]) == big
    saved = await store.get_job(job_id)
    assert saved is not None
    options = saved["options"]
    assert (options["dpi"], options["language"], options["engine"], options["formats"]) == (
        200,
        "eng",  # stored as ISO 639-3
        "null",
        ["txt", "json"],
    )
    job = await store.get_job(job_id, owner="alice")
    assert job is not None
    assert (job["status"], job["documents_total"]) == ("queued", 3)


async def test_another_owner_gets_404_for_a_job(api):
    """A job is visible only to the owner whose token created it."""
    job_id = await submit(api, ("a.png", b"a"))
    for path in (
        f"/api/bulk/status/{job_id}",
        f"/api/bulk/jobs/{job_id}",
        f"/api/bulk/jobs/{job_id}/documents/d0001/text",
        f"/api/bulk/jobs/{job_id}/documents/d0001/json",
    ):
        assert (await api.get(path, headers=BOB)).status == 404
        assert (await api.get(path, headers=ALICE)).status == 200


async def chunks_of(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_upload_over_the_limit_gets_413_and_leaves_nothing_behind(start_gateway, db, store):
    """A streamed upload that passes max_upload_bytes part way is refused with 413; the
    files already stored are deleted and no job is recorded."""
    api = await start_gateway(max_upload_bytes=100_000)
    form = aiohttp.FormData()
    form.add_field("files", io.BytesIO(b"x" * 30_000), filename="first.png")
    # A generator has no length, so the body is sent chunked and only counting can catch it.
    form.add_field("files", chunks_of(b"y" * 200_000), filename="second.png")
    response = await api.post("/api/bulk/jobs", data=form, headers=ALICE)
    assert response.status == 413
    assert "100000" in (await response.json())["error"]
    assert await stored_blob_count(db) == 0
    assert await store.count_jobs("alice") == 0


async def test_declared_content_length_over_the_limit_gets_413_before_reading(start_gateway, db):
    """A Content-Length above the limit is refused before any byte is stored."""
    api = await start_gateway(max_upload_bytes=1_000)
    response = await api.post("/api/bulk/jobs", data=files_form(("big.png", b"z" * 5_000)), headers=ALICE)
    assert response.status == 413
    assert (await response.json())["error"]
    assert await stored_blob_count(db) == 0


def form_with_languages(files: dict[str, str | None], **fields: str) -> aiohttp.MultipartWriter:
    """A submission whose file parts carry these Content-Language headers (None: none)."""
    form = aiohttp.MultipartWriter("form-data")
    for name, language in files.items():
        headers = {"Content-Type": "application/octet-stream"}
        if language is not None:
            headers["Content-Language"] = language
        part = form.append(f"scan of {name}".encode(), headers)
        part.set_content_disposition("form-data", name="files", filename=name)
    for key, value in fields.items():
        form.append(value).set_content_disposition("form-data", name=key)
    return form


async def test_a_file_may_name_its_own_languages(api, store, db):
    """A files part's Content-Language names that document's languages (stored as ISO 639-3)
    beside the job's; an unknown code is a 400 naming the file, and nothing is stored."""
    form = form_with_languages({"ru.png": "ru, eng", "plain.png": None}, language="ell", engine="null")
    response = await api.post("/api/bulk/jobs", data=form, headers=ALICE)
    assert response.status == 202, await response.text()
    job_id = (await response.json())["job_id"]
    documents = await store.get_documents(job_id)
    assert [(d["filename"], d["language"]) for d in documents] == [("ru.png", "rus,eng"), ("plain.png", None)]
    job = await store.get_job(job_id)
    assert job is not None
    assert job["options"]["language"] == "ell"

    blobs_before = await stored_blob_count(db)
    response = await api.post("/api/bulk/jobs", data=form_with_languages({"old.png": "xx"}), headers=ALICE)
    assert response.status == 400
    assert "old.png: unknown language code 'xx'" in (await response.json())["error"]
    assert await stored_blob_count(db) == blobs_before


@pytest.mark.parametrize(
    ("fields", "with_file", "reason"),
    [
        ({"dpi": "300"}, False, "no files"),
        ({"dpi": "10"}, True, "dpi"),
        ({"dpi": "many"}, True, "dpi"),
        ({"engine": "tesserakt"}, True, "engine"),
        ({"language": "eng,xx"}, True, "ISO 639-3"),
        ({"formats": "txt,docx"}, True, "formats"),
        ({"auto_push": "maybe"}, True, "auto_push"),
        ({"colour": "blue"}, True, "colour"),
    ],
)
async def test_bad_submissions_get_400_with_a_reason_and_store_nothing(api, db, store, fields, with_file, reason):
    """No files, a dpi out of range, an unknown engine, language or format, a bad flag or an
    unknown field: 400 naming the problem, and no blobs or job left behind."""
    files = [("a.png", b"a" * 1000)] if with_file else []
    response = await api.post("/api/bulk/jobs", data=files_form(*files, **fields), headers=ALICE)
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert await stored_blob_count(db) == 0
    assert await store.count_jobs("alice") == 0


async def test_a_body_that_is_not_multipart_gets_400(api):
    """JSON (or anything but multipart/form-data) is refused with a reason, not a 500."""
    response = await api.post("/api/bulk/jobs", json={"files": []}, headers=ALICE)
    assert response.status == 400
    assert "multipart" in (await response.json())["error"]


async def test_a_repeated_idempotency_key_returns_the_first_job(api, db, store):
    """The same owner and Idempotency-Key give back the first job (202, same id) and create
    nothing; another owner's same key is a different job."""
    headers = {**ALICE, "Idempotency-Key": "batch-7"}
    first = await submit(api, ("a.png", b"a"), headers=headers)
    again = await submit(api, ("a.png", b"a"), headers=headers)
    assert again == first
    assert await store.count_jobs("alice") == 1
    assert await stored_blob_count(db) == 1
    other = await submit(api, ("a.png", b"a"), headers={**BOB, "Idempotency-Key": "batch-7"})
    assert other != first


async def test_status_reports_progress_documents_nodes_and_eta(api, store):
    """The status body has exactly the documented fields; percent counts done and failed
    pages; eta follows the pace since started_at; a finished job is at 100% with no eta."""
    job_id = await submit(api, ("a.pdf", b"%PDF"), ("b.png", b"png"))
    started = utcnow() - timedelta(seconds=10)
    nodes = {"n1": {"pages_done": 1, "pages_failed": 1, "busy_seconds": 2.5, "last_seen": utcnow()}}
    await store.set_job_fields(
        job_id,
        {"status": "processing", "pages_total": 4, "pages_done": 1, "pages_failed": 1, "started_at": started},
    )
    await store.set_job_fields(job_id, {"nodes": nodes})
    await set_document(store, job_id, "d0001", pages=3, status="processing")
    await set_document(store, job_id, "d0002", pages=0, status="failed", error="not an image", final=True)
    counts = {"documents_by_status": {"processing": 1, "failed": 1}, "documents_failed": ["d0002"]}
    await store.set_job_fields(job_id, {**counts, "documents_failed_total": 1})

    body = await (await api.get(f"/api/bulk/status/{job_id}", headers=ALICE)).json()
    assert set(body) == {
        "job_id",
        "status",
        "progress",
        "documents",
        "documents_total",
        "documents_by_status",
        "failed_documents",
        "failed_documents_total",
        "documents_url",
        "nodes",
        "archipelago_result",
        "created_at",
        "updated_at",
        "eta_seconds",
    }
    assert body["status"] == "processing"
    assert body["progress"] == {"pages_total": 4, "pages_done": 1, "pages_failed": 1, "percent": 50.0}
    extra: dict[str, object] = {"duplicate_of": None, "outputs": {}}  # beside the five seed fields
    assert body["documents"] == [
        {"doc_id": "d0001", "filename": "a.pdf", "pages": 3, "status": "processing", "error": None, **extra},
        {"doc_id": "d0002", "filename": "b.png", "pages": 0, "status": "failed", "error": "not an image", **extra},
    ]
    assert (body["documents_total"], body["documents_by_status"]) == (2, {"processing": 1, "failed": 1})
    assert body["failed_documents"] == body["documents"][1:]
    assert body["failed_documents_total"] == 1
    assert body["documents_url"] == f"/api/bulk/jobs/{job_id}/documents?page=1&per_page=100"
    assert set(body["nodes"]["n1"]) == {"pages_done", "pages_failed", "busy_seconds", "last_seen"}
    assert body["nodes"]["n1"]["busy_seconds"] == 2.5
    assert body["archipelago_result"] is None
    assert 9.0 <= body["eta_seconds"] <= 15.0  # 2 pages left at 2 pages per ~10 s

    await store.set_job_fields(job_id, {"status": "partial", "pages_done": 3, "finished_at": utcnow()})
    alias = await (await api.get(f"/api/bulk/jobs/{job_id}", headers=ALICE)).json()
    assert alias["progress"]["percent"] == 100.0
    assert alias["eta_seconds"] is None


async def test_a_job_of_thousands_of_files_is_accepted_with_a_small_status(store, db, publisher, tmp_path):
    """5,000 files with archive-style names make one job; its status stays small (the first
    20 documents, counts by status) and the documents route pages through all of them."""
    # A blob folder, as `bulkocr up` uses (GridFS on FerretDB scans its files to find one).
    blobs = make_blob_store(BlobSettings(backend="directory", directory=tmp_path), db)
    settings = GatewaySettings.model_validate({"api_tokens": GATEWAY_TOKENS})
    api: Client = TestClient(TestServer(create_app(Deps(settings, store, blobs, publisher))))
    await api.start_server()
    files = [(f"coll-0042_box-017_folder-03_item-{n:05d}.png", f"scan {n}".encode()) for n in range(1, 5001)]
    try:
        await check_thousands_of_files(api, files)
    finally:
        await api.close()


async def check_thousands_of_files(api: Client, files: list[tuple[str, bytes]]) -> None:
    job_id = await submit(api, *files)
    response = await api.get(f"/api/bulk/status/{job_id}", headers=ALICE)
    assert len(await response.read()) < 64 * 1024
    body = await response.json()
    assert (body["documents_total"], body["documents_by_status"]) == (5000, {"queued": 5000})
    assert [d["doc_id"] for d in body["documents"]] == [f"d{n:04d}" for n in range(1, 21)]
    seen: list[str] = []
    url: str | None = f"/api/bulk/jobs/{job_id}/documents?page=1&per_page=1000"
    while url is not None:
        listing = await (await api.get(url, headers=ALICE)).json()
        assert listing["total"] == 5000
        seen += [d["filename"] for d in listing["documents"]]
        url = listing["next_url"]
    assert seen == [name for name, _ in files]
    response = await api.get(f"/api/bulk/jobs/{job_id}/documents?per_page=1001", headers=ALICE)
    assert response.status == 400


async def test_text_joins_pages_in_order_with_form_feeds(api, store, blobs):
    """Pages come in page order split by \\f, a result kept in the blob store is loaded from
    there, a failed page is empty, and X-Bulkocr-Complete says whether more can arrive."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await set_document(store, job_id, "d0001", pages=3, status="processing")
    await store.record_outcome(page_done(job_id, "d0001", 3, result=page_text("three", "end")))
    result_key = f"jobs/{job_id}/results/d0001/1.json"
    await blobs.put(result_key, page_text("one").model_dump_json().encode())
    await store.record_outcome(page_done(job_id, "d0001", 1, result_blob=result_key))
    url = f"/api/bulk/jobs/{job_id}/documents/d0001/text"

    response = await api.get(url, headers=ALICE)
    assert response.status == 200
    assert (response.content_type, response.charset) == ("text/plain", "utf-8")
    assert await response.text() == "one\f\fthree\nend"
    assert response.headers["X-Bulkocr-Complete"] == "false"

    failed = PageFailed(job_id=job_id, doc_id="d0001", page=2, node_id="n1", worker_id="w1", attempts=3, error="x")
    await store.record_outcome(failed)
    response = await api.get(url, headers=ALICE)
    assert await response.text() == "one\f\fthree\nend"
    assert response.headers["X-Bulkocr-Complete"] == "true"

    missing = await api.get(f"/api/bulk/jobs/{job_id}/documents/d0009/text", headers=ALICE)
    assert missing.status == 404
    assert "d0009" in (await missing.json())["error"]


async def test_json_result_has_every_page_with_boxes_and_confidences(api, store):
    """The JSON route lists pages in order with the page model's blocks, lines and words;
    a page without an outcome yet is `pending`, a failed one carries its error."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await set_document(store, job_id, "d0001", pages=3, status="processing")
    await store.record_outcome(page_done(job_id, "d0001", 1, result=page_text("hello")))
    failed = PageFailed(job_id=job_id, doc_id="d0001", page=2, node_id="n2", worker_id="w", attempts=5, error="boom")
    await store.record_outcome(failed)

    response = await api.get(f"/api/bulk/jobs/{job_id}/documents/d0001/json", headers=ALICE)
    body = await response.json()
    assert response.headers["X-Bulkocr-Complete"] == "false"
    assert (body["job_id"], body["doc_id"], body["filename"]) == (job_id, "d0001", "book.pdf")
    one, two, three = body["pages"]
    assert (one["page"], one["status"], one["width"], one["height"], one["engine"]) == (1, "done", 100, 200, "null")
    assert (one["timings"]["total_s"], one["node_id"], one["attempts"]) == (0.7, "n1", 1)
    word = one["blocks"][0]["lines"][0]["words"][0]
    assert word == {"text": "hello", "box": {"x0": 10, "y0": 10, "x1": 90, "y1": 30}, "confidence": 0.9}
    assert (two["status"], two["error"], two["blocks"]) == ("failed", "boom", [])
    assert (three["page"], three["status"]) == (3, "pending")


async def test_jobs_list_is_newest_first_and_paginated(api):
    """The owner's jobs come newest first, `per_page` at a time, with links to the next and
    previous pages; other owners' jobs are not listed; bad paging is a 400."""
    ids = [await submit(api, (f"{n}.png", b"x")) for n in range(3)]
    await submit(api, ("bob.png", b"x"), headers=BOB)

    first = await (await api.get("/api/bulk/jobs?per_page=2", headers=ALICE)).json()
    assert [job["job_id"] for job in first["jobs"]] == [ids[2], ids[1]]
    assert (first["total"], first["page"], first["per_page"]) == (3, 1, 2)
    assert first["prev_url"] is None
    assert first["jobs"][0]["status_url"] == f"/api/bulk/status/{ids[2]}"
    assert first["jobs"][0]["progress"]["percent"] == 0.0
    second = await (await api.get(first["next_url"], headers=ALICE)).json()
    assert [job["job_id"] for job in second["jobs"]] == [ids[0]]
    assert (second["next_url"], second["prev_url"]) == (None, "/api/bulk/jobs?page=1&per_page=2")

    for query in ("per_page=101", "page=0", "page=x"):
        response = await api.get(f"/api/bulk/jobs?{query}", headers=ALICE)
        assert response.status == 400
        assert (await response.json())["error"]


async def test_nodes_lists_workers_and_totals(api, store):
    """Each node shows its heartbeat, engine and workers' in-flight and done counts, with totals."""
    await store.record_heartbeat(
        NodeHeartbeat(node_id="n1", worker_id="w1", engine="null", in_flight=2, pages_done=5, pages_failed=0)
    )
    await store.record_heartbeat(
        NodeHeartbeat(node_id="n1", worker_id="w2", engine="null", in_flight=1, pages_done=3, pages_failed=1)
    )
    body = await (await api.get("/api/nodes", headers=ALICE)).json()
    (node,) = body["nodes"]
    assert (node["node_id"], node["engine"], node["in_flight"], node["pages_done"]) == ("n1", "null", 3, 8)
    assert [w["worker_id"] for w in node["workers"]] == ["w1", "w2"]
    assert node["last_seen"]
    assert node["seconds_since_seen"] >= 0
    assert body["totals"] == {"nodes": 1, "workers": 2, "in_flight": 3, "pages_done": 8, "pages_failed": 1}


async def test_health_needs_no_token(api):
    """/health answers without a token, naming the service and version."""
    response = await api.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "healthy", "service": "gateway", "version": __version__}


async def test_the_web_app_is_served_with_only_its_own_files(api):
    """/ serves the app's HTML without a token; it loads its entry module and stylesheet from
    the gateway, and every module and style it needs is served there too (public), with its
    media type; nothing is loaded from elsewhere."""
    response = await api.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<script type="module" src="/app/main.js"></script>' in page
    assert '<link rel="stylesheet" href="/app/app.css">' in page
    assert "//" not in page
    sources = ""
    for path, (_, media_type) in PAGE.items():
        served = await api.get(path)
        assert (served.status, served.content_type) == (200, media_type), path
        sources += await served.text()
    # The gateway serves the modules the app imports, and no file it does not use.
    imported = {f"/app/{name}" for name in re.findall(r'from "\./([a-z]+\.js)"', sources)}
    assert imported | {"/", "/app/main.js", "/app/app.css"} == set(PAGE)
    assert "/api/bulk/jobs" in sources


async def test_unknown_routes_and_methods_answer_json_errors(api):
    """aiohttp's own 404 and 405 leave as JSON like every other error."""
    missing = await api.get("/api/nothing", headers=ALICE)
    assert missing.status == 404
    assert await missing.json() == {"error": "not found"}
    wrong = await api.delete("/api/bulk/jobs", headers=ALICE)
    assert wrong.status == 405
    assert "Allow" in wrong.headers
    assert await wrong.json() == {"error": "method not allowed"}


def _multipart_with_a_long_part_header() -> tuple[bytes, str]:
    boundary = "hostile"
    header = f'Content-Disposition: form-data; name="files"; filename="{"x" * 9000}.png"'
    body = f"--{boundary}\r\n{header}\r\n\r\npng\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


_HOSTILE = {
    "push body over its limit": ("POST", "/api/archipelago/push-bulk-ami", b'{"job_id": "' + b"x" * 70_000 + b'"}'),
    "JSON nested 60,000 deep": ("POST", "/api/archipelago/push-bulk-ami", b"[" * 60_000),
    "page of 5,000 digits": ("GET", "/api/bulk/jobs/{job_id}/documents?page=" + "9" * 5000, None),
    "page past the database's integers": ("GET", "/api/bulk/jobs/{job_id}/documents?page=" + "9" * 30, None),
    "jobs page past the database's integers": ("GET", "/api/bulk/jobs?page=" + "9" * 30, None),
    "part header over 8 KiB": ("POST", "/api/bulk/jobs", "multipart"),
}


@pytest.mark.parametrize("case", list(_HOSTILE))
async def test_hostile_requests_answer_4xx_with_a_json_reason(api, case: str):
    """Client mistakes found by review that answered 500 get a 4xx with a JSON reason."""
    method, url, body = _HOSTILE[case]
    headers = dict(ALICE)
    if body == "multipart":
        body, headers["Content-Type"] = _multipart_with_a_long_part_header()
    if "{job_id}" in url:
        url = url.format(job_id=await submit(api, ("a.png", b"png")))
    response = await api.request(method, url, data=body, headers=headers)
    assert 400 <= response.status < 500
    assert (await response.json())["error"]


async def test_limits_refuse_an_upload_with_the_limit_named_and_keep_nothing(start_gateway, store, db):
    """File name length, files per job and the owner's storage quota are settings: going over
    one answers 4xx naming it, and keeps neither a job nor an upload."""
    api = await start_gateway(max_filename_chars=20, max_files_per_job=2, max_bytes_per_owner=10_000)
    refused = {
        "file name": ((("a" * 21 + ".png", b"x"),), 400, "file name too long: aaaaaaaaaaaaaaaaaaaaa.png... has 25"),
        "files": ((("a.png", b"x"), ("b.png", b"x"), ("c.png", b"x")), 400, "too many files: at most 2 per job"),
        "quota": ((("big.png", b"x" * 12_000),), 413, "over the storage quota: alice's jobs keep 0 bytes"),
    }
    for case, (files, status, words) in refused.items():
        response = await api.post("/api/bulk/jobs", data=files_form(*files), headers=ALICE)
        assert response.status == status, case
        assert words in (await response.json())["error"], case
    assert await store.list_jobs("alice") == []
    assert await stored_blob_count(db) == 0


async def test_the_storage_quota_counts_kept_uploads_and_retention_gives_them_back(start_gateway, store, db):
    """Two uploads at once that each fit the owner's quota but not together are never both
    kept (one is, or, when they race neck and neck, neither); a refused one answers 413 and
    leaves nothing. Another owner is not affected; once retention removes the kept job, the
    owner's room is back."""
    api = await start_gateway(max_bytes_per_owner=10_000)
    answers = await asyncio.gather(
        *(api.post("/api/bulk/jobs", data=files_form((name, b"x" * 6_000)), headers=ALICE) for name in "ab")
    )
    statuses = sorted(answer.status for answer in answers)
    assert statuses in ([202, 413], [413, 413])
    kept = [(await answer.json())["job_id"] for answer in answers if answer.status == 202]
    assert await store.stored_bytes("alice") == 6_000 * len(kept) <= 10_000
    assert await stored_blob_count(db) == len(kept)
    kept.append(await submit(api, ("c.png", b"x" * 3_500)))  # what is left fits (with the form around it)
    await submit(api, ("bob.png", b"x" * 6_000), headers=BOB)
    for job_id in kept:
        await store.delete_job(job_id)
    assert await store.stored_bytes("alice") == 0
    await submit(api, ("again.png", b"x" * 6_000))


def printed(output: io.StringIO, words: str) -> bool:
    return words in output.getvalue()


async def finish_the_job_like_the_aggregator(store: SeedStore, cli_output: io.StringIO) -> None:
    """Wait for the CLI's job, then record one page per document, each time until the CLI has
    printed the progress, and complete the job."""
    jobs: list[JobRecord] = []

    async def submitted() -> bool:
        jobs[:] = await store.list_jobs("alice")
        return bool(jobs)

    await eventually(submitted, what="the CLI's job")
    job_id = jobs[0]["_id"]
    await store.set_job_fields(job_id, {"status": "processing", "pages_total": 2, "started_at": utcnow()})
    for document in await store.get_documents(job_id):
        await set_document(store, job_id, document["doc_id"], pages=1, status="completed", final=True)
        name = document["filename"].rsplit("/", 1)[-1]
        await store.record_outcome(page_done(job_id, document["doc_id"], 1, result=page_text(f"text of {name}")))
        done = int(document["doc_id"][1:])
        await store.set_job_fields(job_id, {"pages_done": done})
        await eventually(functools.partial(printed, cli_output, f"processing: {done}/2"), what="the CLI's progress")
    await store.set_job_fields(job_id, {"status": "completed", "finished_at": utcnow()})


async def test_cli_submit_waits_and_writes_each_text(api, store, tmp_path: Path):
    """`bulkocr submit DIR --wait` uploads the folder's files, prints progress lines until the
    job completes (from its status, when its events say nothing), writes `<filename>.txt` per
    document and exits 0."""
    scans = tmp_path / "scans"
    (scans / "box1").mkdir(parents=True)
    (scans / "a.png").write_bytes(b"a" * 1000)
    (scans / "box1" / "b.png").write_bytes(b"b" * 300_000)
    (scans / ".DS_Store").write_bytes(b"junk")
    out_dir = tmp_path / "out"
    request = submit_cli.SubmitRequest(
        paths=[scans],
        url=str(api.make_url("/")),
        token="alice-token",
        options={"engine": "null"},
        wait=True,
        out=out_dir,
        poll_s=0.05,
        quiet_check_s=0.05,  # this gateway has no event feed: the CLI falls back on the status
    )
    out, err = io.StringIO(), io.StringIO()
    aggregator = asyncio.create_task(finish_the_job_like_the_aggregator(store, out))
    code = await submit_cli.submit_command(request, out=out, err=err)
    await aggregator

    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    job_id = lines[0]
    assert await store.get_job(job_id, owner="alice") is not None
    assert "processing: 1/2 pages done, 0 failed" in lines
    assert "completed: 2/2 pages done, 0 failed" in lines
    assert (out_dir / "scans" / "a.png.txt").read_text() == "text of a.png"
    assert (out_dir / "scans" / "box1" / "b.png.txt").read_text() == "text of b.png"
    documents = await store.get_documents(job_id)
    assert [(d["filename"], d["size"]) for d in documents] == [("scans/a.png", 1000), ("scans/box1/b.png", 300_000)]


async def test_cli_submit_with_a_refused_token_exits_2_with_the_reason(api, tmp_path: Path):
    """A token the gateway does not know ends the command with exit code 2 and the gateway's reason."""
    (tmp_path / "a.png").write_bytes(b"a")
    request = submit_cli.SubmitRequest(
        paths=[tmp_path / "a.png"], url=str(api.make_url("/")), token="wrong", options={}
    )
    err = io.StringIO()
    assert await submit_cli.submit_command(request, out=io.StringIO(), err=err) == 2
    assert "401" in err.getvalue()
    assert "unknown token" in err.getvalue()


async def test_quality_view_ranks_blank_then_least_confident_pages_first(api, store):
    """A curator's worklist: the job's done pages, blank ones first, then by rising mean word
    confidence, a page at a time, each with links to its text and its words; the JSON of one
    page carries the same signals."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await set_document(store, job_id, "d0001", pages=5, status="processing")
    confidences = {1: 0.95, 2: 0.55, 3: None, 4: 0.75}
    for number, confidence in confidences.items():
        result = page_text("word", "more", confidence=confidence) if confidence is not None else page_text()
        await store.record_outcome(page_done(job_id, "d0001", number, result=result))
    failed = PageFailed(job_id=job_id, doc_id="d0001", page=5, node_id="n1", worker_id="w1", attempts=3, error="x")
    await store.record_outcome(failed)

    first = await (await api.get(f"/api/bulk/jobs/{job_id}/quality?per_page=2", headers=ALICE)).json()
    assert [row["page"] for row in first["pages"]] == [3, 2]
    assert first["pages"][0]["quality"]["blank"] is True
    assert first["pages"][1]["quality"] == {
        "words": 2,
        "mean_confidence": 0.55,
        "low_confidence": 0.55,
        "doubtful_words": 2,
        "rotation": 0,
        "blank": False,
    }
    assert (first["total"], first["pages_failed"]) == (4, 1)
    rest = await (await api.get(first["next_url"], headers=ALICE)).json()
    assert [row["page"] for row in rest["pages"]] == [4, 1]
    assert rest["next_url"] is None

    one = await (await api.get(first["pages"][1]["json_url"], headers=ALICE)).json()
    assert [(p["page"], p["quality"]["mean_confidence"]) for p in one["pages"]] == [(2, 0.55)]
    assert (await api.get(f"/api/bulk/jobs/{job_id}/documents/d0001/json?page=9", headers=ALICE)).status == 400
    assert (await api.get(f"/api/bulk/jobs/{job_id}/quality", headers=BOB)).status == 404
