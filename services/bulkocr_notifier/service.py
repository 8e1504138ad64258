"""Notifier: POSTs a signed webhook when a job finishes (`bulkocr.job.completed`) and when a
push of it to Archipelago ends (`bulkocr.push.finished`), to the job's `callback_url` and to
the global `BULKOCR_WEBHOOK_URL` (docs/webhooks.md).

Each event is one delivery per URL, with an id made from the event (docs: events.py). A
delivery that fails in a way a retry may fix (a 5xx, 408, 429, no connection, no answer in
time) makes the message go back to NSQ with exponential backoff; on the next try, deliveries
that ended are skipped. A delivery ends when it is delivered (2xx), refused for good (another
4xx; an address webhooks may not reach; no secret), or on its last allowed attempt, which
gives it up with the cause logged. Every attempt is recorded on the job (`WebhookStore`).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from bulkocr.callback_urls import redacted
from bulkocr.contracts import (
    FINISHED_STATUSES,
    JOB_COMPLETED,
    NOTIFIER_CHANNEL,
    PUSH_FINISHED,
    JobCompleted,
    PushFinished,
    utcnow,
)
from bulkocr.errors import BulkOcrError
from bulkocr.mongo import JobRecord, JobStore, WebhookStore, connect_mongo
from bulkocr.nsq import Delivery, NsqPublisher
from bulkocr.service import Subscription, run_service, serve
from bulkocr.settings import MongoSettings, NsqSettings
from bulkocr_notifier.addresses import PublicOnlyResolver
from bulkocr_notifier.events import Event, WebhookDelivery, deliveries, job_finished, push_finished
from bulkocr_notifier.sender import Answer, post
from bulkocr_notifier.settings import WebhookSettings

log = structlog.get_logger(__name__)


class DeliveriesPending(BulkOcrError):
    """Some deliveries of the event failed and will be tried again (the message is requeued)."""


@dataclass(frozen=True)
class Deps:
    settings: WebhookSettings
    store: JobStore
    records: WebhookStore
    session: aiohttp.ClientSession


async def handle_job_completed(completed: JobCompleted, delivery: Delivery, *, deps: Deps) -> None:
    job = await deps.store.get_job(completed.job_id)
    if job is None:
        log.info("webhook_job_gone")  # removed by retention: no one to tell
        return
    if job.get("status") not in FINISHED_STATUSES:
        # Reopened (retry-failed) since: it will finish again, and say so then.
        log.info("webhook_job_reopened", status=job.get("status"))
        return
    await notify(job_finished(completed, job, deps.settings.public_url), job, delivery.attempts, deps)


async def handle_push_finished(finished: PushFinished, delivery: Delivery, *, deps: Deps) -> None:
    job = await deps.store.get_job(finished.job_id)
    if job is None:
        log.info("webhook_job_gone")
        return
    await notify(push_finished(finished, deps.settings.public_url), job, delivery.attempts, deps)


async def notify(event: Event, job: JobRecord, attempt: int, deps: Deps) -> None:
    """Deliver the event to each of its URLs that has not had it yet; raise if any is to be
    tried again."""
    pending: list[str] = []
    for target in deliveries(event, job, deps.settings.url):
        shown = redacted(target.url)
        with structlog.contextvars.bound_contextvars(
            event=event.name, delivery_id=target.delivery_id, target=target.target, url=shown
        ):
            answer = await deliver(target, attempt, deps)
        if answer is not None and not answer.final and attempt < deps.settings.attempts:
            pending.append(f"{shown}: {answer.error}")
    if pending:
        raise DeliveriesPending("; ".join(pending))


async def deliver(target: WebhookDelivery, attempt: int, deps: Deps) -> Answer | None:
    """One attempt at one delivery, recorded and logged; None if the delivery had ended."""
    if await deps.records.ended(target.delivery_id) is not None:
        log.info("webhook_already_ended")  # an earlier try delivered it: a redelivered message
        return None
    settings = deps.settings
    answer = await post(
        deps.session,
        target,
        secret=settings.secret.get_secret_value(),
        timeout_s=settings.timeout_s,
        allow_private=settings.allow_private,
    )
    last = attempt >= settings.attempts
    outcome = "given_up" if last and not answer.final else answer.outcome
    record = {
        "job_id": target.event.job_id,
        "delivery_id": target.delivery_id,
        "event": target.event.name,
        "target": target.target,
        "url": redacted(target.url),
        "attempt": attempt,
        "outcome": outcome,
        "status_code": answer.status_code,
        "error": answer.error,
        "at": utcnow(),
    }
    await deps.records.record_attempt(record, ends=answer.final or last)
    _log_answer(outcome, answer, attempt)
    return answer


def _log_answer(outcome: str, answer: Answer, attempt: int) -> None:
    fields: dict[str, Any] = {"attempt": attempt, "status_code": answer.status_code, "error": answer.error}
    if outcome == "delivered":
        log.info("webhook_delivered", **fields)
    elif outcome == "retrying":
        log.warning("webhook_failed", **fields)
    elif outcome == "given_up":
        log.error("webhook_given_up", **fields)
    else:  # rejected by the receiver, or refused here
        log.warning(f"webhook_{outcome}", **fields)


def connector_for(settings: WebhookSettings) -> aiohttp.TCPConnector:
    """Connections only to public addresses, unless private ones are allowed."""
    resolver = aiohttp.ThreadedResolver()
    return aiohttp.TCPConnector(resolver=resolver if settings.allow_private else PublicOnlyResolver(resolver))


async def run(
    settings: WebhookSettings, nsq: NsqSettings, mongo: MongoSettings, *, stop: asyncio.Event | None = None
) -> None:
    """Consume finished jobs and pushes until `stop` (SIGTERM or SIGINT by default)."""
    if not settings.secret.get_secret_value():
        log.warning("webhook_secret_missing", hint="set BULKOCR_WEBHOOK_SECRET; webhooks are recorded as not sent")
    async with (
        connect_mongo(mongo) as db,
        NsqPublisher(nsq) as publisher,
        aiohttp.ClientSession(connector=connector_for(settings)) as session,
    ):
        records = WebhookStore(db)
        await records.ensure_indexes()
        deps = Deps(settings, JobStore(db), records, session)
        retries, in_flight = settings.retries(nsq), settings.max_in_flight
        subscriptions = [
            Subscription(topic, NOTIFIER_CHANNEL, functools.partial(handler, deps=deps), in_flight, nsq=retries)
            for topic, handler in ((JOB_COMPLETED, handle_job_completed), (PUSH_FINISHED, handle_push_finished))
        ]
        await serve(
            nsq=nsq,
            publisher=publisher,
            subscriptions=subscriptions,
            stop=stop,
            webhook_url=redacted(settings.url) if settings.url else None,
            allow_private=settings.allow_private,
        )


def main() -> None:
    run_service("notifier", run, WebhookSettings, NsqSettings, MongoSettings)
