"""Routes for pushing a finished job into Archipelago, and the job's AMI spreadsheet.

The gateway records the request and queues it (`bulkocr.archipelago.push`); the uploader
does the work and keeps its progress in its own collections, which the status route reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from bulkocr.ami import ami_csv, ami_rows, not_pushable_reason
from bulkocr.contracts import ARCHIPELAGO_PUSH, ArchipelagoPush, PushOptions
from bulkocr.errors import PublishError
from bulkocr_gateway.http import JSON, fail, json_response
from bulkocr_gateway.keys import ARCHIPELAGO, OWNER, PUBLISHER, SETTINGS, STORE
from bulkocr_gateway.models import Accepted, ArchipelagoResult
from bulkocr_gateway.views import archipelago_view, status_url

log = structlog.get_logger(__name__)

push_routes = web.RouteTableDef()

_MAX_BODY = 64 * 1024


async def _push_body(request: web.Request) -> tuple[str, PushOptions]:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        reason = json.dumps({"error": f"the request body is larger than {_MAX_BODY} bytes"})
        size = request.content_length
        raise web.HTTPRequestEntityTooLarge(_MAX_BODY, size, text=reason, content_type=JSON)
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        fail(web.HTTPBadRequest, 'send a JSON object: {"job_id": "...", ...options}')
    if not isinstance(body, dict) or not isinstance(body.get("job_id"), str) or not body["job_id"]:
        fail(web.HTTPBadRequest, 'send a JSON object with a "job_id" string')
    job_id = body.pop("job_id")
    try:
        return job_id, PushOptions.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        fail(web.HTTPBadRequest, f"invalid push options: {problems}")


async def _pushable_job(request: web.Request, job_id: str) -> Mapping[str, Any]:
    job = await request.app[STORE].get_job(job_id, owner=request[OWNER])
    if job is None:
        fail(web.HTTPNotFound, f"no job {job_id}")
    if (reason := not_pushable_reason(job)) is not None:
        fail(web.HTTPConflict, reason)
    return job


@push_routes.post("/api/archipelago/push-bulk-ami")
async def push_bulk_ami(request: web.Request) -> web.Response:
    """Queue a push of a finished job into Archipelago: 202 at once; progress shows in the
    job's status as `archipelago_result`."""
    # A malformed request is the client's to fix whatever this gateway's configuration.
    job_id, options = await _push_body(request)
    if not request.app[SETTINGS].archipelago_url:
        fail(web.HTTPServiceUnavailable, "Archipelago is not configured here (BULKOCR_ARCHIPELAGO_URL is not set)")
    await _pushable_job(request, job_id)
    message_options = options.as_message_options()
    # Recorded before it is published, so the uploader always finds the request it serves.
    request_id = await request.app[ARCHIPELAGO].request_push(job_id, request[OWNER], message_options)
    try:
        await request.app[PUBLISHER].publish(ARCHIPELAGO_PUSH, ArchipelagoPush(job_id=job_id, options=message_options))
    except PublishError as error:
        await request.app[ARCHIPELAGO].withdraw_request(job_id, request_id)
        log.error("push_not_queued", job_id=job_id, error=str(error))
        fail(web.HTTPServiceUnavailable, f"the push of job {job_id} could not be queued ({error}); try again")
    log.info("push_requested", job_id=job_id, owner=request[OWNER], **message_options)
    url = status_url(job_id)
    return json_response(Accepted(job_id=job_id, status_url=url), status=202, headers={"Location": url})


@push_routes.get("/api/bulk/jobs/{job_id}/ami.csv")
async def ami_spreadsheet(request: web.Request) -> web.Response:
    """The job as an AMI spreadsheet (collection first, then one row per document with
    text); file cells name the files `bulkocr push` would upload, for the set's ZIP."""
    job = await _pushable_job(request, request.match_info["job_id"])
    asked = await request.app[ARCHIPELAGO].get_request(job["_id"])
    options = PushOptions.model_validate((asked or {}).get("options") or {})
    documents = await request.app[STORE].get_documents(job["_id"])
    text = ami_csv(ami_rows(job["_id"], documents, options, include_collection=True))
    disposition = f'attachment; filename="bulkocr-{job["_id"]}.csv"'
    headers = {"Content-Disposition": disposition}
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers=headers)


async def archipelago_result(request: web.Request, job_id: str) -> ArchipelagoResult | None:
    """The job's push for the status route (None if it was never pushed)."""
    store = request.app[ARCHIPELAGO]
    request_record, push = await store.get_request(job_id), await store.get_push(job_id)
    if request_record is None and push is None:
        # Never pushed, so no objects: not asked for, since FerretDB finds a job's objects by
        # reading every pushed object of every job, and a status is read every few seconds.
        return None
    return archipelago_view(request_record, push, await store.get_objects(job_id))
