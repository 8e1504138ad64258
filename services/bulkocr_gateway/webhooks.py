"""A job's webhook deliveries, as its owner sees them: every attempt the notifier made, with
the receiver's answer or why nothing was sent. URLs are shown without user name, password
or query (the notifier records them so), and no header or secret is ever stored."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from bulkocr.mongo import WebhookStore
from bulkocr_gateway.http import json_response
from bulkocr_gateway.keys import STORE
from bulkocr_gateway.routes import owned_job, paging

webhook_routes = web.RouteTableDef()

DeliveryOutcome = Literal["delivered", "rejected", "refused", "retrying", "given_up"]


class WebhookAttempt(BaseModel):
    delivery_id: str
    event: Literal["job.finished", "push.finished"]
    target: Literal["callback", "global"]
    url: str
    attempt: int
    outcome: DeliveryOutcome
    status_code: int | None
    error: str | None
    ends: bool
    at: datetime


class WebhookDeliveryList(BaseModel):
    job_id: str
    deliveries: list[WebhookAttempt]
    page: int
    per_page: int
    total: int
    next_url: str | None


def _webhooks_url(job_id: str, page: int, per_page: int) -> str:
    return f"/api/bulk/jobs/{job_id}/webhooks?page={page}&per_page={per_page}"


@webhook_routes.get("/api/bulk/jobs/{job_id}/webhooks")
async def job_webhooks(request: web.Request) -> web.Response:
    job = await owned_job(request)
    job_id = str(job["_id"])
    page, per_page = paging(request, per_page=50)
    records = WebhookStore(request.app[STORE].db)
    found = await records.for_job(job_id, skip=(page - 1) * per_page, limit=per_page)
    total = await records.count_for_job(job_id)
    view = WebhookDeliveryList(
        job_id=job_id,
        deliveries=[WebhookAttempt.model_validate(record) for record in found],
        page=page,
        per_page=per_page,
        total=total,
        next_url=_webhooks_url(job_id, page + 1, per_page) if page * per_page < total else None,
    )
    return json_response(view)
