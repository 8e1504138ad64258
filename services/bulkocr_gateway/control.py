"""Routes that change a running job: cancel it, replay its failed pages.

The gateway never writes progress itself (the aggregator owns the job's status and counts):
it checks ownership and state, then asks the aggregator over NSQ and answers 202.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from bulkocr.contracts import FINISHED_STATUSES, JOB_CANCEL, JOB_RETRY, JobCancel, JobRetry
from bulkocr.mongo import JobRecord
from bulkocr_gateway.http import error_response, json_response
from bulkocr_gateway.keys import OWNER, PUBLISHER, STORE

control_routes = web.RouteTableDef()


class ControlAccepted(BaseModel):
    job_id: str
    status: str
    pages_failed: int | None = None


async def _owned(request: web.Request) -> JobRecord | None:
    return await request.app[STORE].get_job(request.match_info["job_id"], owner=request[OWNER])


@control_routes.post("/api/bulk/jobs/{job_id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a job that is still running: pages not yet read are dropped without OCR."""
    job = await _owned(request)
    if job is None:
        return error_response(404, f"no job {request.match_info['job_id']}")
    if job["status"] in FINISHED_STATUSES:
        return error_response(409, f"job {job['_id']} is already {job['status']}")
    await request.app[PUBLISHER].publish(JOB_CANCEL, JobCancel(job_id=str(job["_id"])))
    return json_response(ControlAccepted(job_id=job["_id"], status="cancelling"), status=202)


@control_routes.post("/api/bulk/jobs/{job_id}/retry-failed")
async def retry_failed(request: web.Request) -> web.Response:
    """Replay a finished job's failed pages; pages that never reached OCR (unreadable) stay failed."""
    job = await _owned(request)
    if job is None:
        return error_response(404, f"no job {request.match_info['job_id']}")
    if job["status"] == "cancelled":
        return error_response(409, f"job {job['_id']} was cancelled")
    failed = int(job.get("pages_failed") or 0)
    if failed == 0:
        return error_response(409, f"job {job['_id']} has no failed pages")
    await request.app[PUBLISHER].publish(JOB_RETRY, JobRetry(job_id=str(job["_id"])))
    return json_response(ControlAccepted(job_id=job["_id"], status="retrying", pages_failed=failed), status=202)
