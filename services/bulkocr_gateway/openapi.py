"""The gateway's OpenAPI document (`GET /api/openapi.json`), built from the pydantic models the
routes answer with, so what it describes is what they send. Each operation is listed once
here; a test checks that every route of the app is described and nothing else is
(tests/integration/test_openapi.py), and schemathesis sends requests made from this document
and finds no server error."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from bulkocr import __version__
from bulkocr.callback_urls import MAX_URL_CHARS
from bulkocr.contracts import ENGINE_NAMES, PushOptions
from bulkocr_gateway.control import ControlAccepted
from bulkocr_gateway.dead_letters import DeadLetterList, DeadLetterView, Replayed
from bulkocr_gateway.models import (
    Accepted,
    DocumentList,
    DocumentResult,
    Health,
    JobList,
    JobStatusView,
    NodeList,
)
from bulkocr_gateway.options import MAX_LANGUAGE_CHARS, OPTION_FIELDS
from bulkocr_gateway.quality import QualityView
from bulkocr_gateway.settings import FORMATS
from bulkocr_gateway.webhooks import WebhookDeliveryList

openapi_routes = web.RouteTableDef()


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, in words."""

    error: str


class PushRequest(PushOptions):
    """The body of a push: the job, and the push's options."""

    job_id: str = Field(min_length=1)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answers: dict[int, type[BaseModel] | str | None]  # status -> model, a media type for a file, None: no body
    parameters: tuple[dict[str, Any], ...] = ()
    body: type[BaseModel] | str | None = None  # a model (JSON), or "multipart" for an upload
    public: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)


def _in_path(*names: str) -> tuple[dict[str, Any], ...]:
    return tuple({"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names)


def _page_query(maximum: int) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"name": name, "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": top}}
        for name, top in (("page", 999_999_999), ("per_page", maximum))
    )


_JOB = _in_path("job_id")
_DOCUMENT = _in_path("job_id", "doc_id")
_NOT_FOUND: dict[int, type[BaseModel] | str | None] = {401: ErrorBody, 404: ErrorBody}
_ADMIN: dict[int, type[BaseModel] | str | None] = {403: ErrorBody, **_NOT_FOUND}
_LETTER = _in_path("letter_id")

OPERATIONS = (
    Operation("get", "/health", "Liveness of the gateway", {200: Health}, public=True),
    Operation("get", "/api/openapi.json", "This document", {200: "application/json"}, public=True),
    Operation("get", "/api/docs", "This document as a reference page", {200: "text/html"}, public=True),
    Operation(
        "post",
        "/api/bulk/jobs",
        "Submit a job: files as multipart parts named `files`, options as form fields",
        {202: Accepted, 400: ErrorBody, 401: ErrorBody, 408: ErrorBody, 409: ErrorBody, 413: ErrorBody},
        parameters=({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},),
        body="multipart",
    ),
    Operation(
        "get",
        "/api/bulk/jobs",
        "The caller's jobs, newest first",
        {200: JobList, 400: ErrorBody, 401: ErrorBody},
        parameters=_page_query(100),
    ),
    Operation(
        "get",
        "/api/bulk/status/{job_id}",
        "A job's status (stays small whatever its size)",
        {200: JobStatusView, **_NOT_FOUND},
        parameters=_JOB,
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}",
        "A job's status (the same as /api/bulk/status/{job_id})",
        {200: JobStatusView, **_NOT_FOUND},
        parameters=_JOB,
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/documents",
        "Every document of a job, a page at a time",
        {200: DocumentList, 400: ErrorBody, **_NOT_FOUND},
        parameters=_JOB + _page_query(1000),
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/documents/{doc_id}/text",
        "A document's text, read live",
        {200: "text/plain", **_NOT_FOUND},
        parameters=_DOCUMENT,
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/documents/{doc_id}/json",
        "A document's pages with boxes, confidences and quality signals (`page`: that page alone)",
        {200: DocumentResult, 400: ErrorBody, **_NOT_FOUND},
        parameters=(*_DOCUMENT, _page_query(1)[0]),
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/events",
        "The job's live events (server-sent events): snapshot, progress, page, document, job",
        {200: "text/event-stream", **_NOT_FOUND},
        parameters=(*_JOB, {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}}),
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/quality",
        "The job's pages ranked worst first by their quality signals, for a curator",
        {200: QualityView, 400: ErrorBody, **_NOT_FOUND},
        parameters=(*_JOB, *_page_query(100)),
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/webhooks",
        "Every attempt at delivering the job's webhooks, oldest first",
        {200: WebhookDeliveryList, 400: ErrorBody, **_NOT_FOUND},
        parameters=(*_JOB, *_page_query(100)),
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/documents/{doc_id}/pages/{page}/image",
        "A page's image as ingest rendered it, in its source orientation (the page viewer)",
        {200: "image/png", **_NOT_FOUND},
        parameters=(
            *_DOCUMENT,
            {"name": "page", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
        ),
    ),
    *(
        Operation(
            "get",
            f"/api/bulk/jobs/{{job_id}}/documents/{{doc_id}}/{fmt}",
            f"A document as {fmt}",
            {200: media, 400: ErrorBody, **_NOT_FOUND},
            parameters=_DOCUMENT,
        )
        for fmt, media in (
            ("pdf", "application/pdf"),
            ("hocr", "text/html"),
            ("alto", "application/xml"),
            ("miniocr", "application/xml"),
            ("txt", "text/plain"),
        )
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/bundle.zip",
        "Every document in the chosen formats, zipped",
        {200: "application/zip", 400: ErrorBody, **_NOT_FOUND},
        parameters=(*_JOB, {"name": "formats", "in": "query", "required": False, "schema": {"type": "string"}}),
    ),
    Operation(
        "post",
        "/api/bulk/jobs/{job_id}/cancel",
        "Cancel a running job",
        {202: ControlAccepted, 409: ErrorBody, **_NOT_FOUND},
        parameters=_JOB,
    ),
    Operation(
        "post",
        "/api/bulk/jobs/{job_id}/retry-failed",
        "Read a finished job's failed pages again",
        {202: ControlAccepted, 409: ErrorBody, **_NOT_FOUND},
        parameters=_JOB,
    ),
    Operation(
        "post",
        "/api/archipelago/push-bulk-ami",
        "Push a finished job into Archipelago",
        {202: Accepted, 400: ErrorBody, 409: ErrorBody, 413: ErrorBody, 503: ErrorBody, **_NOT_FOUND},
        body=PushRequest,
    ),
    Operation(
        "get",
        "/api/bulk/jobs/{job_id}/ami.csv",
        "The job as an AMI spreadsheet",
        {200: "text/csv", 409: ErrorBody, **_NOT_FOUND},
        parameters=_JOB,
    ),
    Operation("get", "/api/nodes", "The worker nodes and their page counts", {200: NodeList, 401: ErrorBody}),
    Operation(
        "get",
        "/api/admin/dead-letters",
        "Dead letters, newest first, and how many each topic holds (administrators)",
        {200: DeadLetterList, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody},
        parameters=(
            {"name": "topic", "in": "query", "required": False, "schema": {"type": "string"}},
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 500},
            },
        ),
    ),
    Operation(
        "get",
        "/api/admin/dead-letters/{letter_id}",
        "One dead letter with its body",
        {200: DeadLetterView, **_ADMIN},
        parameters=_LETTER,
    ),
    Operation(
        "post",
        "/api/admin/dead-letters/{letter_id}/replay",
        "Send a dead letter back to its topic",
        {202: Replayed, 409: ErrorBody, 503: ErrorBody, **_ADMIN},
        parameters=_LETTER,
    ),
    Operation(
        "delete",
        "/api/admin/dead-letters/{letter_id}",
        "Drop a dead letter",
        {204: None, **_ADMIN},
        parameters=_LETTER,
    ),
)


def _upload_schema() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1},
        "engine": {"type": "string", "enum": list(ENGINE_NAMES)},
        "language": {
            "type": "string",
            "maxLength": MAX_LANGUAGE_CHARS,
            "description": "ISO 639-3 codes separated by commas, e.g. rus or ell,eng (an unknown code is a 400)",
        },
        "dpi": {"type": "string", "pattern": "^[0-9]{2,4}$"},
        "formats": {"type": "string", "description": f"comma-separated, of {', '.join(FORMATS)}"},
        "auto_push": {"type": "string", "enum": ["true", "false"]},
        "callback_url": {"type": "string", "maxLength": MAX_URL_CHARS, "description": "http(s) URL for webhooks"},
    }
    assert set(fields) == {"files", *OPTION_FIELDS}
    return {"type": "object", "properties": fields, "required": ["files"]}


def _content(answer: type[BaseModel] | str) -> dict[str, Any]:
    if isinstance(answer, str):
        return {answer: {"schema": {"type": "string", "format": "binary"}}}
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer.__name__}"}}}


@functools.cache  # the routes do not change while the gateway runs: built once, on first request
def openapi_document() -> dict[str, Any]:
    models = {answer for op in OPERATIONS for answer in op.answers.values() if isinstance(answer, type)}
    models |= {op.body for op in OPERATIONS if isinstance(op.body, type)}
    _, schemas = models_json_schema(
        [(model, "serialization") for model in sorted(models, key=lambda model: model.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": op.summary,
            "parameters": list(op.parameters),
            "responses": {
                str(status): {"description": f"{status}"} | ({} if answer is None else {"content": _content(answer)})
                for status, answer in op.answers.items()
            },
        }
        if op.public:
            operation["security"] = []
        if op.body == "multipart":
            operation["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": _upload_schema()}},
            }
        elif isinstance(op.body, type):
            operation["requestBody"] = {"required": True, "content": _content(op.body)}
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "bulkocr gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }


@openapi_routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
