"""What a webhook says and where it goes (pure): the event's body, its targets (the job's
callback_url and the global URL) and each delivery's id.

A delivery's id and body are made from what the event is (its kind, the job, its status and
time, the target), never from when it is sent, so every retry of one delivery carries the
same id and the same bytes, and a receiver can drop what it already has.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bulkocr.contracts import JobCompleted, PushFinished

EventName = Literal["job.finished", "push.finished"]


@dataclass(frozen=True)
class Event:
    name: EventName
    job_id: str
    status: str
    at: datetime | None
    body: bytes


@dataclass(frozen=True)
class WebhookDelivery:
    """One event to one URL."""

    event: Event
    url: str
    target: Literal["callback", "global"]
    delivery_id: str


def status_url(job_id: str, public_url: str) -> str:
    """The job's status route, absolute when the gateway's public address is known."""
    return f"{public_url.rstrip('/')}/api/bulk/status/{job_id}"


def _body(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, separators=(",", ":"), default=str).encode()


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def job_finished(completed: JobCompleted, job: Mapping[str, Any], public_url: str) -> Event:
    """The job's end, its counts as the job record holds them."""
    at = job.get("finished_at")
    fields = {
        "event": "job.finished",
        "job_id": completed.job_id,
        "status": completed.status,
        "at": _iso(at),
        "documents_total": int(job.get("documents_total") or 0),
        "pages_total": int(job.get("pages_total") or 0),
        "pages_done": int(job.get("pages_done") or 0),
        "pages_failed": int(job.get("pages_failed") or 0),
        "status_url": status_url(completed.job_id, public_url),
    }
    return Event("job.finished", completed.job_id, completed.status, at, _body(fields))


def push_finished(finished: PushFinished, public_url: str) -> Event:
    fields = {
        "event": "push.finished",
        "job_id": finished.job_id,
        "status": finished.status,
        "at": _iso(finished.at),
        "error": finished.error,
        "status_url": status_url(finished.job_id, public_url),
    }
    return Event("push.finished", finished.job_id, finished.status, finished.at, _body(fields))


def delivery_id(event: Event, url: str) -> str:
    key = "\n".join((event.name, event.job_id, event.status, _iso(event.at) or "", url))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def deliveries(event: Event, job: Mapping[str, Any], global_url: str) -> list[WebhookDelivery]:
    """The event's deliveries: to the job's callback_url, and to the global URL (once, if they
    are the same URL)."""
    callback = (job.get("options") or {}).get("callback_url") or ""
    targets: list[tuple[str, Literal["callback", "global"]]] = []
    if callback:
        targets.append((str(callback), "callback"))
    if global_url and global_url != callback:
        targets.append((global_url, "global"))
    return [WebhookDelivery(event, url, target, delivery_id(event, url)) for url, target in targets]
