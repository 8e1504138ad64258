"""Telling a job's listeners (through every gateway) what just happened to it: best effort,
since the feed is never stored and a listener that misses something starts from a snapshot."""

from __future__ import annotations

import structlog

from bulkocr.contracts import JOB_EVENTS, JobEvent, JobEvents
from bulkocr.errors import PublishError
from bulkocr.nsq import NsqPublisher

log = structlog.get_logger(__name__)


async def tell_listeners(publisher: NsqPublisher | None, job_id: str, *events: JobEvent) -> None:
    """Publish the events; a failure is logged and dropped (the work itself is already stored)."""
    if publisher is None or not events:
        return
    try:
        await publisher.publish(JOB_EVENTS, JobEvents(job_id=job_id, events=events))
    except PublishError as error:
        log.warning("job_events_not_sent", job_id=job_id, error=str(error))
