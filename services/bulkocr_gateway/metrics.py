"""The gateway's metrics: requests by route and status, and what became of each upload."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

from bulkocr.metrics import SECONDS_BUCKETS

REQUESTS = Counter(
    "bulkocr_http_requests_total", "Requests answered, by route and status", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "bulkocr_http_request_seconds", "Time to answer a request, by route", ["method", "route"], buckets=SECONDS_BUCKETS
)
UPLOADS = Counter(
    "bulkocr_uploads_total",
    "Job submissions by outcome: 202 accepted (or replayed), 4xx refused with a reason, 5xx failed",
    ["status"],
)
SUBMIT_ROUTE = ("POST", "/api/bulk/jobs")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, so it counts what the client got, errors made JSON by the inner middleware included."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        # The route's template, never the path: job ids would make a series per job.
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        REQUESTS.labels(request.method, route, str(status)).inc()
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        if (request.method, route) == SUBMIT_ROUTE:
            UPLOADS.labels(str(status)).inc()
