"""The NSQ adapter against real nsqd and nsqlookupd: delivery, retries, dead letters, drain."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from bulkocr.contracts import (
    JOB_COMPLETED,
    OUTPUTS_CHANNEL,
    SUBSCRIPTIONS,
    UPLOADER_CHANNEL,
    DeadLetter,
    JobCompleted,
    Message,
    Topic,
    dead_letter_topic,
)
from bulkocr.errors import PermanentError, PublishError, Unfinished
from bulkocr.nsq import Delivery, NsqAdmin, NsqPublisher, consuming, local_nsqd
from bulkocr.settings import NsqSettings
from bulkocr_devstack.servers import LocalServers, free_port
from tests.fakes.crashing_consumer import Crash
from tests.integration.conftest import nsq_settings_for
from tests.waiting import eventually


class Ping(Message):
    n: int


class Text(Message):
    text: str


CHANNEL = "test"


@pytest.fixture
async def ping_topic(topic_name: str, nsq_admin: NsqAdmin) -> Topic[Ping]:
    """A fresh topic whose channel (and dead-letter channel) exist before anything is published."""
    await nsq_admin.create_channel(topic_name, CHANNEL)
    await nsq_admin.create_channel(dead_letter_topic(topic_name).name, CHANNEL)
    return Topic(topic_name, Ping)


async def collect_dead_letters(
    topic: Topic[Ping], publisher: NsqPublisher, settings: NsqSettings, into: list[DeadLetter]
) -> None:
    async def keep(letter: DeadLetter, delivery: Delivery) -> None:
        into.append(letter)

    async with consuming(dead_letter_topic(topic.name), CHANNEL, keep, publisher=publisher, settings=settings):
        await asyncio.Event().wait()


async def test_messages_round_trip_through_lookupd_discovery(ping_topic, publisher, nsq_settings):
    """A consumer that knows only nsqlookupd finds nsqd and gets every message, decoded."""
    received: list[Ping] = []

    async def handle(ping: Ping, delivery: Delivery) -> None:
        received.append(ping)

    settings = nsq_settings.model_copy(update={"nsqd_tcp_addresses": ["127.0.0.1:1"]})
    async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=settings, max_in_flight=2):
        for n in range(3):
            await publisher.publish(ping_topic, Ping(n=n))
        await eventually(lambda: len(received) == 3, what="three messages")
    assert sorted(p.n for p in received) == [0, 1, 2]


async def test_consumers_ask_nsqd_for_the_output_buffer_timeout_of_the_settings(ping_topic, publisher, nsq_settings):
    """nsqd holds a consumer's messages up to its output buffer timeout to send them together;
    at nsqd's default (250 ms) every hop of a small job waited that long. The consumer asks
    for the setting's timeout when it connects: nsqd takes 40 ms, and refuses 10 ms (under
    its minimum, 25 ms), so such a consumer never gets connected."""

    async def handle(message: Ping, delivery: Delivery) -> None:
        pass

    accepted = nsq_settings.model_copy(update={"output_buffer_timeout_ms": 40})
    async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=accepted) as consumer:
        await consumer.wait_connected(timeout_s=10)
    refused = nsq_settings.model_copy(update={"output_buffer_timeout_ms": 10})
    async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=refused) as consumer:
        with pytest.raises(TimeoutError):
            await consumer.wait_connected(timeout_s=2)


async def test_failed_handler_is_requeued_with_backoff_delay(ping_topic, publisher, servers):
    """An exception requeues the message with a delay (REQ), and it comes back as attempt 2."""
    settings = nsq_settings_for(servers, backoff_base_s=1.0)
    seen: list[tuple[int, float]] = []

    async def flaky(ping: Ping, delivery: Delivery) -> None:
        seen.append((delivery.attempts, time.monotonic()))
        if delivery.attempts == 1:
            raise RuntimeError("database briefly away")

    async with consuming(ping_topic, CHANNEL, flaky, publisher=publisher, settings=settings):
        await publisher.publish(ping_topic, Ping(n=1))
        await eventually(lambda: len(seen) == 2, what="the redelivery")
    assert [attempt for attempt, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= 0.9


async def test_exhausted_attempts_go_to_the_dead_letter_topic(ping_topic, publisher, servers, nsq_admin):
    """After max attempts the message is kept on `<topic>.dlq` with its cause, and not retried again."""
    settings = nsq_settings_for(servers, max_attempts=3, backoff_base_s=0.1)
    calls: list[int] = []
    letters: list[DeadLetter] = []

    async def always_fails(ping: Ping, delivery: Delivery) -> None:
        calls.append(delivery.attempts)
        raise RuntimeError("engine crashed")

    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, settings, letters))
    async with consuming(ping_topic, CHANNEL, always_fails, publisher=publisher, settings=settings):
        await publisher.publish(ping_topic, Ping(n=7))
        await eventually(lambda: len(letters) == 1, what="the dead letter")
        stats = await nsq_admin.channel_stats(ping_topic.name, CHANNEL)
    dlq.cancel()
    assert calls == [1, 2, 3]
    assert stats is not None
    assert stats["depth"] == stats["in_flight_count"] == stats["deferred_count"] == 0
    letter = letters[0]
    assert letter.topic == ping_topic.name
    assert letter.attempts == 3
    assert "gave up after 3 attempts" in letter.cause
    assert "engine crashed" in letter.cause
    assert Ping.model_validate_json(letter.body) == Ping(n=7)


async def test_a_message_that_kills_its_consumer_is_dead_lettered_before_it_runs_again(
    topic_name, publisher, servers, nsq_admin, tmp_path
):
    """A message whose handler kills the process (no FIN, no REQ: nsqd just sees the connection
    end) is delivered again to the restarted consumer; once it has been delivered more often
    than the attempts allowed, it goes to the dead-letter topic, with its cause and the give-up
    report, without running the handler again. Before, it was delivered for ever."""
    await nsq_admin.create_channel(topic_name, CHANNEL)
    await nsq_admin.create_channel(dead_letter_topic(topic_name).name, CHANNEL)
    settings = nsq_settings_for(servers, max_attempts=3)
    report = tmp_path / "report"
    report.touch()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BULKOCR_")}
    env.update(servers.addresses.environment())
    # nsqd hands a dead consumer's message out again once its timeout runs out.
    env.update({"BULKOCR_NSQ_MAX_ATTEMPTS": "3", "BULKOCR_NSQ_MSG_TIMEOUT_S": "1"})
    await publisher.publish(Topic(topic_name, Crash), Crash(n=1))
    letters: list[DeadLetter] = []
    dlq = asyncio.create_task(collect_dead_letters(Topic(topic_name, Ping), publisher, settings, letters))

    def crashed_or_dead_lettered(consumer: subprocess.Popen[bytes]) -> bool:
        # Not stopped at its give-up report: that is written before the dead letter is
        # published, and a consumer stopped in between (as CI once did) leaves none.
        return consumer.poll() is not None or bool(letters)

    for _ in range(5):  # a supervisor restarting the consumer, as Swarm does
        consumer = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.crashing_consumer", topic_name, CHANNEL, str(report)],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
        )
        try:
            await eventually(functools.partial(crashed_or_dead_lettered, consumer), what="a crash or the dead letter")
        finally:
            if consumer.poll() is None:
                consumer.terminate()
            await asyncio.to_thread(consumer.wait)
        if letters:
            break
    await eventually(lambda: len(letters) == 1, what="the dead letter")
    dlq.cancel()
    lines = report.read_text().splitlines()
    assert lines[:3] == ["attempt 1", "attempt 2", "attempt 3"]
    assert len(lines) == 4
    assert "delivered 4 times" in lines[3]
    assert letters[0].attempts == 4
    assert "never answered" in letters[0].cause
    assert Crash.model_validate_json(letters[0].body) == Crash(n=1)


async def test_a_dead_letter_too_big_for_nsqd_is_cut_to_fit_not_requeued_for_ever(
    ping_topic, publisher, nsq_settings, nsq_admin
):
    """A message near nsqd's 1 MiB limit whose body JSON-escapes to more than that is still
    dead-lettered: the letter keeps the start of the body, its size, and says it was cut."""
    big = Topic(ping_topic.name, Text)
    letters: list[DeadLetter] = []

    async def refuses(message: Text, delivery: Delivery) -> None:
        raise PermanentError("no")

    body = Text(text='"' * 500_000)  # 1 MB as sent (each quote escaped), 2 MB escaped again in a letter
    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, nsq_settings, letters))
    async with consuming(big, CHANNEL, refuses, publisher=publisher, settings=nsq_settings):
        await publisher.publish(big, body)
        await eventually(lambda: len(letters) == 1, what="the dead letter")
        stats = await nsq_admin.channel_stats(ping_topic.name, CHANNEL)
    dlq.cancel()
    assert stats is not None
    assert stats["depth"] == stats["in_flight_count"] == stats["deferred_count"] == 0
    letter = letters[0]
    assert letter.truncated
    assert letter.body_bytes == len(big.encode(body))
    assert big.encode(body).decode().startswith(letter.body)
    assert letter.cause == "PermanentError: no"


async def test_permanent_error_is_dead_lettered_at_once_and_reported(ping_topic, publisher, nsq_settings):
    """A PermanentError is not retried: the give-up hook hears the cause, then the dead-letter topic keeps it."""
    letters: list[DeadLetter] = []
    given_up: list[tuple[Ping, str, int]] = []

    async def refuses(ping: Ping, delivery: Delivery) -> None:
        raise PermanentError("not a PDF")

    async def on_give_up(ping: Ping, cause: str, attempts: int) -> None:
        given_up.append((ping, cause, attempts))

    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, nsq_settings, letters))
    async with consuming(
        ping_topic, CHANNEL, refuses, publisher=publisher, settings=nsq_settings, on_give_up=on_give_up
    ):
        await publisher.publish(ping_topic, Ping(n=1))
        await eventually(lambda: len(letters) == 1, what="the dead letter")
    dlq.cancel()
    assert given_up == [(Ping(n=1), "PermanentError: not a PDF", 1)]
    assert letters[0].attempts == 1


class PartlyDone(Unfinished):
    """A handler's own error for the part of its message it left."""


async def test_the_retry_and_give_up_reports_speak_of_the_part_a_handler_left(ping_topic, publisher, nsq_settings):
    """A handler that did part of its message says what is left: the retry and give-up hooks
    hear of that part, while nsqd redelivers, then dead-letters, the message as it was."""
    letters: list[DeadLetter] = []
    heard: list[tuple[str, Ping, int]] = []
    settings = nsq_settings.model_copy(update={"max_attempts": 2, "backoff_base_s": 0.0})

    async def half(ping: Ping, delivery: Delivery) -> None:
        raise PartlyDone("half of it", Ping(n=ping.n // 2))

    async def on_retry(ping: Ping, cause: str, attempts: int) -> None:
        heard.append(("retry", ping, attempts))

    async def on_give_up(ping: Ping, cause: str, attempts: int) -> None:
        heard.append(("give up", ping, attempts))

    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, nsq_settings, letters))
    async with consuming(
        ping_topic, CHANNEL, half, publisher=publisher, settings=settings, on_give_up=on_give_up, on_retry=on_retry
    ):
        await publisher.publish(ping_topic, Ping(n=10))
        await eventually(lambda: len(letters) == 1, what="the dead letter")
    dlq.cancel()
    assert heard == [("retry", Ping(n=5), 1), ("give up", Ping(n=5), 2)]
    assert Ping.model_validate_json(letters[0].body) == Ping(n=10)
    assert letters[0].cause == "gave up after 2 attempts: PartlyDone: half of it"


async def test_malformed_message_is_rejected_with_a_log_line_not_retried(ping_topic, publisher, nsq_settings):
    """A body that is not a valid payload never reaches the handler; it is logged and dead-lettered."""
    handled: list[Ping] = []
    letters: list[DeadLetter] = []

    async def handle(ping: Ping, delivery: Delivery) -> None:
        handled.append(ping)

    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, nsq_settings, letters))
    with capture_logs() as logs:
        async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=nsq_settings):
            await publisher.publish_body(ping_topic.name, b'{"v": 1, "n": "seven", "extra": true}')
            await eventually(lambda: len(letters) == 1, what="the dead letter")
    dlq.cancel()
    assert handled == []
    assert letters[0].attempts == 1
    assert "not a valid Ping" in letters[0].cause
    assert any(entry["event"] == "message_rejected" for entry in logs)


async def test_rolling_update_newer_minor_is_handled_newer_major_is_dead_lettered(ping_topic, publisher, nsq_settings):
    """During a rolling update a consumer not yet updated reads a newer minor version (its new
    fields ignored) and keeps a newer major version on the dead-letter topic, with the reason."""
    handled: list[Ping] = []
    letters: list[DeadLetter] = []

    async def handle(ping: Ping, delivery: Delivery) -> None:
        handled.append(ping)

    dlq = asyncio.create_task(collect_dead_letters(ping_topic, publisher, nsq_settings, letters))
    async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=nsq_settings):
        await publisher.publish_body(ping_topic.name, b'{"v": "1.4", "n": 5, "priority": "high"}')
        await publisher.publish_body(ping_topic.name, b'{"v": "2.0", "n": 6}')
        await eventually(lambda: len(handled) == 1 and len(letters) == 1, what="one handled, one dead letter")
    dlq.cancel()
    assert handled == [Ping(n=5, v="1.4")]
    assert '"n": 6' in letters[0].body
    assert "version 2.0 has another major version than this consumer reads (1.x)" in letters[0].cause


async def test_drain_finishes_in_flight_work_and_leaves_the_rest_queued(ping_topic, publisher, nsq_settings, nsq_admin):
    """Leaving `consuming` stops intake, lets in-flight handlers finish and FIN, and loses nothing:
    a second consumer gets exactly the messages the first never started."""
    started: list[int] = []
    finished: list[int] = []

    async def slow(ping: Ping, delivery: Delivery) -> None:
        started.append(ping.n)
        await asyncio.sleep(0.5)  # the handler's work
        finished.append(ping.n)

    await publisher.publish_many(ping_topic, [Ping(n=n) for n in range(20)])
    async with consuming(ping_topic, CHANNEL, slow, publisher=publisher, settings=nsq_settings, max_in_flight=4):
        await eventually(lambda: len(started) >= 4, what="four messages in flight")
    assert sorted(started) == sorted(finished)

    async def nothing_in_flight() -> bool:
        stats = await nsq_admin.channel_stats(ping_topic.name, CHANNEL)
        return stats is not None and stats["in_flight_count"] == 0 and stats["depth"] == 20 - len(finished)

    await eventually(nothing_in_flight, timeout_s=5, what="nsqd to record the FINs")

    async with consuming(ping_topic, CHANNEL, slow, publisher=publisher, settings=nsq_settings, max_in_flight=8):
        await eventually(lambda: len(finished) >= 20, what="the rest of the messages")
    assert Counter(finished) == Counter(range(20))


async def test_long_handler_is_touched_instead_of_redelivered(ping_topic, publisher, servers, nsq_admin):
    """A handler that runs for three message timeouts is TOUCHed, so nsqd neither times it out nor redelivers."""
    settings = nsq_settings_for(servers, msg_timeout_s=1.0)
    attempts: list[int] = []

    async def long_work(ping: Ping, delivery: Delivery) -> None:
        attempts.append(delivery.attempts)
        await asyncio.sleep(3.0)  # the handler's work

    async with consuming(ping_topic, CHANNEL, long_work, publisher=publisher, settings=settings):
        await publisher.publish(ping_topic, Ping(n=1))
        await eventually(lambda: len(attempts) == 1, what="the delivery")
        await asyncio.sleep(3.5)  # no redelivery over three message timeouts
        stats = await nsq_admin.channel_stats(ping_topic.name, CHANNEL)
    assert attempts == [1]
    assert stats is not None
    assert stats["timeout_count"] == 0


async def test_multi_publish_splits_large_batches_and_delivers_all(ping_topic, publisher, nsq_admin):
    """publish_many sends more messages than one MPUB may carry, and nsqd holds every one."""
    await publisher.publish_many(ping_topic, [Ping(n=n) for n in range(1200)])
    stats = await nsq_admin.channel_stats(ping_topic.name, CHANNEL)
    assert stats is not None
    assert stats["depth"] == 1200


async def test_deferred_publish_arrives_after_its_delay(ping_topic, publisher, nsq_settings):
    """DPUB holds a message back for the given delay."""
    arrived: list[float] = []

    async def handle(ping: Ping, delivery: Delivery) -> None:
        arrived.append(time.monotonic())

    async with consuming(ping_topic, CHANNEL, handle, publisher=publisher, settings=nsq_settings):
        sent = time.monotonic()
        await publisher.publish_deferred(ping_topic, Ping(n=1), delay_s=1.0)
        await eventually(lambda: len(arrived) == 1, what="the deferred message")
    assert arrived[0] - sent >= 0.9


async def test_publish_without_nsqd_fails_clearly_instead_of_hanging():
    """With no nsqd to talk to, publishing raises PublishError within its timeout."""
    settings = NsqSettings(nsqd_tcp_addresses=["127.0.0.1:1"], publish_timeout_s=1.0, connect_timeout_s=1.0)
    publisher = NsqPublisher(settings)
    started = time.monotonic()
    with pytest.raises(PublishError, match="no connection to nsqd"):
        await publisher.publish(Topic("test.nowhere", Ping), Ping(n=1))
    publisher.close()
    assert time.monotonic() - started < 5


async def test_publisher_reconnects_after_nsqd_restarts(tmp_path):
    """Stopping nsqd makes publishing fail; once nsqd is back on its port, publishing works again."""
    with LocalServers(tmp_path) as own:
        settings = nsq_settings_for(own, publish_timeout_s=1.0, connect_timeout_s=1.0)
        async with NsqPublisher(settings) as publisher:
            topic = Topic("test.restart", Ping)
            await publisher.publish(topic, Ping(n=1))
            own.stop_server("nsqd")
            with pytest.raises(PublishError):
                await publisher.publish(topic, Ping(n=2))
            own.start_server("nsqd")
            await publisher.wait_connected(10)
            await publisher.publish(topic, Ping(n=3))


async def test_a_publisher_makes_a_topics_channels_before_its_first_message_and_no_others(tmp_path):
    """Every consumer of a topic gets its first message, however late it subscribes (the channels
    were made first), and an nsqd holds only the topics published to it: nsqlookupd sends a
    topic's consumers to every nsqd that has it (with an nsqd per node, consumers spread their
    few in-flight messages over nsqds that never get one)."""
    with LocalServers(tmp_path, names=("nsqlookupd", "nsqd")) as own:
        settings = nsq_settings_for(own)
        async with NsqPublisher(settings) as publisher:
            await publisher.publish(JOB_COMPLETED, JobCompleted(job_id="j1", status="completed"))
        async with aiohttp.ClientSession() as session:
            stats = await NsqAdmin(session, settings.nsqd_http_address).stats()
    topics = {t["topic_name"]: {c["channel_name"]: c["depth"] for c in t["channels"]} for t in stats["topics"]}
    consumers = {channel for topic, channel in SUBSCRIPTIONS if topic is JOB_COMPLETED}
    assert {UPLOADER_CHANNEL, OUTPUTS_CHANNEL} <= consumers
    assert topics == {JOB_COMPLETED.name: dict.fromkeys(consumers, 1)}


async def test_a_worker_finds_the_nsqd_of_its_own_node_through_nsqlookupd(nsq_settings):
    """With one nsqd per node, a worker publishes to the one registered under its node's nsqd
    hostname (nsqd registers the machine's hostname here); a name nobody registered is a clear
    error once the connect timeout has passed, and without the setting nothing changes."""
    async with aiohttp.ClientSession() as session:
        assert await local_nsqd(session, nsq_settings) == nsq_settings
        own = nsq_settings.model_copy(update={"local_nsqd_hostname": socket.gethostname(), "nsqd_tcp_addresses": []})
        found = await local_nsqd(session, own)
        tcp_port = nsq_settings.nsqd_tcp_addresses[0].rpartition(":")[2]
        assert [address.rpartition(":")[2] for address in found.nsqd_tcp_addresses] == [tcp_port]
        assert found.nsqd_http_address.rpartition(":")[2] == nsq_settings.nsqd_http_address.rpartition(":")[2]
        nobody = nsq_settings.model_copy(update={"local_nsqd_hostname": "nsqd-elsewhere", "connect_timeout_s": 1.0})
        with pytest.raises(PublishError, match="no nsqd registered as 'nsqd-elsewhere'"):
            await local_nsqd(session, nobody)


async def test_a_topic_no_nsqd_holds_yet_is_polled_quietly_while_a_failing_lookupd_is_logged(
    topic_name, publisher, nsq_settings, caplog
):
    """Until something is published to a topic (a dead-letter topic while nothing has failed),
    nsqlookupd answers its consumers' polls with 404; operators saw 14 warnings every 10 s from
    the keeper alone. A lookupd that cannot be reached still shows in the log."""
    gone = f"127.0.0.1:{free_port()}"
    unreachable = nsq_settings.model_copy(update={"lookupd_http_addresses": [gone]})
    topic = Topic(topic_name, Ping)

    async def handle(ping: Ping, delivery: Delivery) -> None:
        pass

    def warnings(about: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "nsq.reader" and about in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="nsq.reader"):
        async with (
            consuming(topic, CHANNEL, handle, publisher=publisher, settings=nsq_settings),
            consuming(topic, CHANNEL, handle, publisher=publisher, settings=unreachable),
        ):
            # Both poll every second: by the third failed poll, the other has polled twice.
            await eventually(lambda: len(warnings(gone)) >= 3, what="three failed lookupd polls")
    assert all("query error" in line for line in warnings(gone))
    assert warnings(nsq_settings.lookupd_http_addresses[0]) == []
