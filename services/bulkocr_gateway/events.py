"""Live job events for listeners: `GET /api/bulk/jobs/{job_id}/events` (server-sent events).

Every gateway reads the aggregator's feed (`bulkocr.job.events#ephemeral`) on a channel of
its own and hands each job's events to that job's listeners here: the database is read once
per connection (the opening snapshot), never per event or per listener. Each event has an
id; a listener that reconnects with `Last-Event-ID` gets what it missed while this gateway
still holds it, and otherwise a fresh snapshot. The stream stays open after the job's end
(`job`), for its outputs (`outputs`) and pushes (`push`): the listener closes it.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from bulkocr_gateway.feeds import Event
from bulkocr_gateway.keys import JOB_FEEDS
from bulkocr_gateway.routes import owned_job, status_view

log = structlog.get_logger(__name__)

events_routes = web.RouteTableDef()

KEEP_ALIVE_S = 15.0
"""A comment line this often, so proxies keep a quiet stream open."""


def _frame(event_id: str, name: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


@events_routes.get("/api/bulk/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    job = await owned_job(request)
    feeds = request.app[JOB_FEEDS]
    response = web.StreamResponse(headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    with feeds.listen(str(job["_id"])) as (feed, queue):
        await response.prepare(request)
        try:
            last_id = request.headers.get("Last-Event-ID", "")
            missed = feeds.missed(feed, last_id) if last_id else None
            if missed is None:
                # Listening first, then reading: nothing that happens in between is lost.
                job = await owned_job(request)
                snapshot = (await status_view(request, job)).model_dump_json()
                await response.write(_frame(f"{feeds.epoch}-{feed.count}", "snapshot", snapshot))
            for event in missed or ():
                await response.write(_frame(*event))
            await _stream(response, queue)
        except ConnectionResetError:
            log.info("listener_left", job_id=job["_id"])
    return response


async def _stream(response: web.StreamResponse, queue: asyncio.Queue[Event | None]) -> None:
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if event is None:
            return
        await response.write(_frame(*event))
