"""Webhooks against real nsqd and FerretDB and a receiver on loopback (tests/fakes/webhook_receiver.py)
that fails on purpose: a finished job's POST arrives signed and verifies, failures are retried
with one delivery id until delivered (once) or given up, a final 4xx and a private address are
not retried, every attempt is recorded for the job's owner only, and no secret reaches a log."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bulkocr.contracts import (
    JOB_COMPLETED,
    NOTIFIER_CHANNEL,
    PUSH_FINISHED,
    JobCompleted,
    JobOptions,
    PushOptions,
    Topic,
    utcnow,
)
from bulkocr.errors import PermanentError
from bulkocr.mongo import ArchipelagoStore, Document, WebhookStore
from bulkocr.nsq import NsqAdmin, NsqPublisher, consuming
from bulkocr.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from bulkocr_notifier.service import Deps, connector_for, handle_job_completed, run
from bulkocr_notifier.settings import WebhookSettings
from bulkocr_uploader.service import Deps as UploaderDeps
from bulkocr_uploader.service import push_job
from bulkocr_uploader.settings import UploaderSettings
from tests.fakes.webhook_receiver import Fault, WebhookReceiver
from tests.integration.test_gateway import ALICE, BOB, files_form
from tests.stores import SeedStore
from tests.waiting import eventually

SECRET = "whsec-test-6f1d0c"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


def webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "secret": SECRET,
        "allow_private": True,
        "attempts": 5,
        "backoff_base_s": 0.1,
        "backoff_max_s": 0.4,
        "timeout_s": 2.0,
        "public_url": "https://ocr.example.org",
        **overrides,
    }
    return WebhookSettings.model_validate(values)


async def finished_job(store: SeedStore, callback_url: str | None, *, status: str = "completed") -> str:
    job_id = uuid.uuid4().hex
    await store.create_job(job_id, "alice", JobOptions(callback_url=callback_url), [])
    fields = {"status": status, "finished_at": utcnow(), "pages_total": 3, "pages_done": 2, "pages_failed": 1}
    await store.set_job_fields(job_id, fields)
    return job_id


@contextlib.asynccontextmanager
async def notifier(
    settings: WebhookSettings, store: SeedStore, publisher: NsqPublisher, nsq_settings, nsq_admin: NsqAdmin
) -> AsyncIterator[Topic[JobCompleted]]:
    """The notifier's handler of finished jobs on a topic of the test's own, with the
    service's retry settings; yields the topic to publish to."""
    topic = Topic(f"test.webhooks.{uuid.uuid4().hex[:10]}", JobCompleted)
    await nsq_admin.create_topic(topic.name)
    await nsq_admin.create_channel(topic.name, NOTIFIER_CHANNEL)
    async with aiohttp.ClientSession(connector=connector_for(settings)) as session:
        deps = Deps(settings, store, WebhookStore(store.db), session)
        await deps.records.ensure_indexes()
        handler = functools.partial(handle_job_completed, deps=deps)
        retries = settings.retries(nsq_settings)
        async with consuming(topic, NOTIFIER_CHANNEL, handler, publisher=publisher, settings=retries) as consumer:
            await consumer.wait_connected()
            yield topic


async def attempts_of(store: SeedStore, job_id: str) -> list[Document]:
    return await WebhookStore(store.db).for_job(job_id)


async def ended(store: SeedStore, job_id: str, count: int = 1) -> bool:
    return sum(bool(record["ends"]) for record in await attempts_of(store, job_id)) == count


def assert_signed(headers: dict[str, str], body: bytes) -> None:
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=time.time())


async def test_a_finished_job_posts_signed_webhooks_to_its_callback_and_the_global_url(
    store, receiver, publisher, nsq_settings, mongo_settings, nsq_admin
):
    """The service itself, on the real topics: job.finished to the callback_url and to
    BULKOCR_WEBHOOK_URL, each a delivery of its own, signed; then a push that ends (in the
    uploader's own code) sends push.finished the same way."""
    settings = webhook_settings(url=receiver.url("/global"))
    job_id = await finished_job(store, receiver.url("/hook"), status="partial")
    # The aggregator and the uploader make these channels as they first publish to them; the
    # notifier finds nsqd through nsqlookupd once the topics exist.
    for topic in (JOB_COMPLETED, PUSH_FINISHED):
        await nsq_admin.create_channel(topic.name, NOTIFIER_CHANNEL)
    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, nsq_settings, mongo_settings, stop=stop))

    async def subscribed() -> bool:
        if service.done():
            service.result()
        counts = [await nsq_admin.channel_stats(t.name, NOTIFIER_CHANNEL) for t in (JOB_COMPLETED, PUSH_FINISHED)]
        return all(stats and stats["client_count"] for stats in counts)

    await eventually(subscribed, what="the notifier subscribed")
    try:
        await publisher.publish(JOB_COMPLETED, JobCompleted(job_id=job_id, status="partial"))
        await eventually(lambda: len(receiver.requests) == 2, what="both webhooks")
        hook, everyone = receiver.to("/hook")[0], receiver.to("/global")[0]
        for request in (hook, everyone):
            assert_signed(request.headers, request.body)
            assert request.headers[EVENT_HEADER] == "job.finished"
            assert request.headers["Content-Type"] == "application/json"
            body = json.loads(request.body)
            assert {key: body[key] for key in ("event", "job_id", "status", "pages_done", "pages_failed")} == {
                "event": "job.finished",
                "job_id": job_id,
                "status": "partial",
                "pages_done": 2,
                "pages_failed": 1,
            }
            assert body["status_url"] == f"https://ocr.example.org/api/bulk/status/{job_id}"
        assert hook.headers[DELIVERY_HEADER] != everyone.headers[DELIVERY_HEADER]
        assert not verify("another secret", hook.headers[SIGNATURE_HEADER], hook.body, now=time.time())

        await push_of_an_unconfigured_archipelago(store, publisher, job_id)
        await eventually(lambda: len(receiver.requests) == 4, what="both push webhooks")
        pushed = receiver.to("/hook")[1]
        assert_signed(pushed.headers, pushed.body)
        body = json.loads(pushed.body)
        assert (body["event"], body["job_id"], body["status"]) == ("push.finished", job_id, "failed")
        assert "not configured" in body["error"]
        await eventually(lambda: ended(store, job_id, 4), what="four deliveries recorded")
    finally:
        stop.set()
        await service


async def push_of_an_unconfigured_archipelago(store: SeedStore, publisher: NsqPublisher, job_id: str) -> None:
    """A push that fails at once (no Archipelago configured): it still ends, and says so."""

    async def no_outputs(job: str, doc: str, fmt: str) -> bytes:
        raise AssertionError("nothing is fetched")

    async with aiohttp.ClientSession() as session:
        deps = UploaderDeps(
            UploaderSettings(url=""), store, ArchipelagoStore(store.db), no_outputs, session, publisher=publisher
        )
        with pytest.raises(PermanentError, match="not configured"):
            await push_job(job_id, PushOptions(), deps=deps)


async def test_a_failing_receiver_gets_the_same_delivery_until_it_answers_and_then_never_again(
    store, receiver, publisher, nsq_settings, nsq_admin
):
    """500, 500, 503, then 204: four tries, one delivery id, the same signed bytes, each
    attempt recorded with its answer; a redelivered message then sends nothing."""
    receiver.script("/hook", Fault(500), Fault(500), Fault(503))
    job_id = await finished_job(store, receiver.url("/hook"))
    async with notifier(webhook_settings(), store, publisher, nsq_settings, nsq_admin) as topic:
        await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
        await eventually(lambda: ended(store, job_id), what="the delivery ended")
        tries = receiver.to("/hook")
        assert [request.answered for request in tries] == [500, 500, 503, 204]
        assert len({request.headers[DELIVERY_HEADER] for request in tries}) == 1
        assert len({request.body for request in tries}) == 1
        for request in tries:
            assert_signed(request.headers, request.body)
        records = await attempts_of(store, job_id)
        assert [(r["attempt"], r["outcome"], r["status_code"], r["ends"]) for r in records] == [
            (1, "retrying", 500, False),
            (2, "retrying", 500, False),
            (3, "retrying", 503, False),
            (4, "delivered", 204, True),
        ]
        assert {r["delivery_id"] for r in records} == {tries[0].headers[DELIVERY_HEADER]}

        # The same message again (at-least-once), then another job's: once the other one is
        # delivered, the repeat has been handled (one at a time, in order) and sent nothing.
        other = await finished_job(store, receiver.url("/other"))
        await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
        await publisher.publish(topic, JobCompleted(job_id=other, status="completed"))
        await eventually(lambda: len(receiver.to("/other")) == 1, what="the other job's webhook")
        assert len(receiver.to("/hook")) == 4


async def test_a_receiver_that_hangs_past_the_timeout_is_tried_again(
    store, receiver, publisher, nsq_settings, nsq_admin
):
    receiver.script("/hook", Fault(204, hang_s=30))
    job_id = await finished_job(store, receiver.url("/hook"))
    settings = webhook_settings(timeout_s=0.5)
    async with notifier(settings, store, publisher, nsq_settings, nsq_admin) as topic:
        await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
        await eventually(lambda: ended(store, job_id), what="the delivery ended")
    records = await attempts_of(store, job_id)
    assert [(r["outcome"], r["status_code"], r["error"]) for r in records] == [
        ("retrying", None, "no answer within 0.5 s"),
        ("delivered", 204, None),
    ]
    assert len({request.headers[DELIVERY_HEADER] for request in receiver.to("/hook")}) == 1


async def test_a_410_is_final_and_never_retried(store, receiver, publisher, nsq_settings, nsq_admin):
    receiver.script("/hook", Fault(410))
    job_id = await finished_job(store, receiver.url("/hook"))
    async with notifier(webhook_settings(), store, publisher, nsq_settings, nsq_admin) as topic:
        await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
        await eventually(lambda: ended(store, job_id), what="the delivery ended")
        other = await finished_job(store, receiver.url("/other"))
        await publisher.publish(topic, JobCompleted(job_id=other, status="completed"))
        await eventually(lambda: len(receiver.to("/other")) == 1, what="the other job's webhook")
        stats = await nsq_admin.channel_stats(topic.name, NOTIFIER_CHANNEL)
    assert stats is not None
    assert (stats["requeue_count"], stats["deferred_count"]) == (0, 0)
    assert [request.answered for request in receiver.to("/hook")] == [410]
    (record,) = await attempts_of(store, job_id)
    assert (record["outcome"], record["status_code"], record["ends"]) == ("rejected", 410, True)


async def test_a_delivery_is_given_up_after_its_last_attempt(store, receiver, publisher, nsq_settings, nsq_admin):
    receiver.script("/hook", *[Fault(502)] * 10)
    job_id = await finished_job(store, receiver.url("/hook"))
    with capture_logs() as logs:
        async with notifier(webhook_settings(attempts=3), store, publisher, nsq_settings, nsq_admin) as topic:
            await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
            await eventually(lambda: ended(store, job_id), what="the delivery given up")

            async def settled() -> bool:
                stats = await nsq_admin.channel_stats(topic.name, NOTIFIER_CHANNEL)
                return stats is not None and (stats["depth"], stats["deferred_count"], stats["in_flight_count"]) == (
                    0,
                    0,
                    0,
                )

            await eventually(settled, what="the message finished")
    records = await attempts_of(store, job_id)
    assert [(r["outcome"], r["ends"]) for r in records] == [
        ("retrying", False),
        ("retrying", False),
        ("given_up", True),
    ]
    assert len(receiver.to("/hook")) == 3
    (given_up,) = [entry for entry in logs if entry["event"] == "webhook_given_up"]
    assert given_up["error"] == "the receiver answered 502"


async def test_private_addresses_are_refused_unless_allowed(store, receiver, publisher, nsq_settings, nsq_admin):
    """An address written out and a name that resolves to one (localhost) are both refused:
    nothing is sent, the refusal is the delivery's error, and nothing is retried."""
    settings = webhook_settings(allow_private=False, url=receiver.url("/global", host="localhost"))
    job_id = await finished_job(store, receiver.url("/hook"))
    async with notifier(settings, store, publisher, nsq_settings, nsq_admin) as topic:
        await publisher.publish(topic, JobCompleted(job_id=job_id, status="completed"))
        await eventually(lambda: ended(store, job_id, 2), what="both deliveries refused")
        stats = await nsq_admin.channel_stats(topic.name, NOTIFIER_CHANNEL)
    assert stats is not None
    assert stats["requeue_count"] == 0
    assert receiver.requests == []
    by_target = {record["target"]: record for record in await attempts_of(store, job_id)}
    assert by_target["callback"]["outcome"] == by_target["global"]["outcome"] == "refused"
    assert "127.0.0.1 is a loopback address" in by_target["callback"]["error"]
    assert "localhost resolves to" in by_target["global"]["error"]
    assert "loopback address" in by_target["global"]["error"]


async def test_the_route_lists_deliveries_to_the_owner_only_and_no_secret_anywhere(
    api, store, receiver, publisher, nsq_settings, nsq_admin
):
    """A callback URL with a password and a token is used as given, but recorded, logged and
    listed without them; the signing secret is in no log line and no answer."""
    callback = receiver.url("/hook").replace("://", "://user:pw-c4f3@") + "?token=tok-9a7e"
    response = await api.post("/api/bulk/jobs", data=files_form(("a.png", b"x"), callback_url=callback), headers=ALICE)
    assert response.status == 202, await response.text()
    job_id = (await response.json())["job_id"]
    assert (await store.get_job(job_id) or {})["options"]["callback_url"] == callback
    await store.set_job_fields(job_id, {"status": "failed", "finished_at": utcnow()})
    with capture_logs() as logs:
        async with notifier(webhook_settings(), store, publisher, nsq_settings, nsq_admin) as topic:
            await publisher.publish(topic, JobCompleted(job_id=job_id, status="failed"))
            await eventually(lambda: ended(store, job_id), what="the delivery ended")
    (request,) = receiver.to("/hook")
    assert request.headers["Authorization"].startswith("Basic ")  # the receiver's own credentials reach it

    listed = await api.get(f"/api/bulk/jobs/{job_id}/webhooks", headers=ALICE)
    assert listed.status == 200
    text = await listed.text()
    (delivery,) = json.loads(text)["deliveries"]
    assert delivery["url"] == receiver.url("/hook")
    assert (delivery["event"], delivery["outcome"], delivery["status_code"]) == ("job.finished", "delivered", 204)
    for leaked in (SECRET, "pw-c4f3", "tok-9a7e", request.headers["Authorization"]):
        assert leaked not in text
        assert leaked not in repr(logs)
    assert (await api.get(f"/api/bulk/jobs/{job_id}/webhooks", headers=BOB)).status == 404
    assert (await api.get("/api/bulk/jobs/nope/webhooks", headers=ALICE)).status == 404


@pytest.mark.parametrize(
    ("callback_url", "reason"),
    [
        ("ftp://example.org/hook", "callback_url must be an http or https URL"),
        ("javascript:alert(1)", "callback_url must be an http or https URL"),
        ("https://", "callback_url names no host"),
        ("https://example.org/" + "x" * 2000, "callback_url is longer than 2000 characters"),
    ],
)
async def test_the_gateway_refuses_a_bad_callback_url_with_400(api, store, callback_url, reason):
    response = await api.post(
        "/api/bulk/jobs", data=files_form(("a.png", b"x"), callback_url=callback_url), headers=ALICE
    )
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert await store.list_jobs("alice") == []
