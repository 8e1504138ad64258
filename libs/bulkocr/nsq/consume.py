"""Consuming from nsqd: a handler per message, with FIN, REQ with backoff, dead letters, TOUCH
and drain (see the package's docstring for the rules)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic

import nsq  # pynsq ships no type information: see [[tool.mypy.overrides]]
import structlog

from bulkocr.contracts import DeadLetter, DecodeError, M, Topic, dead_letter_topic
from bulkocr.errors import PermanentError, Unfinished
from bulkocr.metrics import IN_FLIGHT, MESSAGE_SECONDS, MESSAGES
from bulkocr.nsq.publish import POLL_S, NsqPublisher
from bulkocr.settings import NsqSettings

log = structlog.get_logger(__name__)


class Delivery:
    """What a handler may know and do about the message it is handling."""

    def __init__(self, message: Any) -> None:
        self._message = message

    @property
    def attempts(self) -> int:
        """1 on first delivery; nsqd counts every delivery, timeouts included."""
        return int(self._message.attempts)

    @property
    def message_id(self) -> str:
        return bytes(self._message.id).decode()

    def touch(self) -> None:
        """Ask nsqd for another msg-timeout before it redelivers (capped by --max-msg-timeout)."""
        if not self._message.has_responded():
            self._message.touch()


Handler = Callable[[M, Delivery], Awaitable[None]]
GiveUp = Callable[[M, str, int], Awaitable[None]]
"""Called with (message, cause, attempts) before a decoded message is dead-lettered;
`on_retry` has the same shape and is called when a failed attempt is requeued."""


class _TopicNotProducedYet(logging.Filter):
    """pynsq warns at every lookupd poll while no nsqd holds the topic (nsqlookupd answers 404
    TOPIC_NOT_FOUND). An nsqd holds only the topics published to it, so that is routine (a
    dead-letter topic while nothing has failed): 14 warnings every 10 s from the keeper alone.
    Every other lookupd error is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.args[-1] if isinstance(record.args, tuple) and record.args else None
        response = getattr(error, "response", None)
        body = getattr(response, "body", None) or b""
        return not (getattr(error, "code", None) == 404 and b"TOPIC_NOT_FOUND" in body)


logging.getLogger("nsq.reader").addFilter(_TopicNotProducedYet())


class _ClosableReader(nsq.Reader):  # type: ignore[misc]  # the base class is untyped
    """pynsq's Reader reconnects after close(); this one stays closed."""

    closing = False

    def connect_to_nsqd(self, host: str, port: int) -> Any:
        if not self.closing:
            return super().connect_to_nsqd(host, port)
        return None

    def query_lookupd(self) -> Any:
        if not self.closing:
            return super().query_lookupd()
        return None

    def _on_connection_close(self, conn: Any, **kwargs: Any) -> None:
        if self.closing:
            self.conns.pop(conn.id, None)
            return
        super()._on_connection_close(conn, **kwargs)

    def _on_connection_error(self, conn: Any, error: Any, **kwargs: Any) -> None:
        if not self.closing:  # closing our own socket makes pynsq report a framing error
            super()._on_connection_error(conn, error, **kwargs)

    async def flush_and_close(self, timeout_s: float) -> None:
        """Close every connection once its buffered FIN/REQ frames are written:
        tornado drops unwritten data on close, and nsqd would then redeliver."""
        self.closing = True
        deadline = time.monotonic() + timeout_s
        while any(conn.stream and conn.stream.writing() for conn in self.conns.values()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        self.close()


def backoff_delay(attempts: int, settings: NsqSettings) -> float:
    """Seconds before the next try: base, 2 x base, 4 x base... capped."""
    return float(min(settings.backoff_base_s * 2 ** max(attempts - 1, 0), settings.backoff_max_s))


@dataclass
class Consumer(Generic[M]):
    """A running subscription of one handler to one topic/channel."""

    topic: Topic[M]
    channel: str
    handler: Handler[M]
    publisher: NsqPublisher
    settings: NsqSettings
    max_in_flight: int
    on_give_up: GiveUp[M] | None = None
    on_retry: GiveUp[M] | None = None

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._dead_letters = dead_letter_topic(self.topic.name, self.settings.dead_letter_suffix)
        labels = (self.topic.name, self.channel)
        self._ended = {outcome: MESSAGES.labels(*labels, outcome) for outcome in OUTCOMES}
        self._seconds = MESSAGE_SECONDS.labels(*labels)
        self._in_flight = IN_FLIGHT.labels(*labels)
        addresses = {"lookupd_http_addresses": list(self.settings.lookupd_http_addresses)}
        if not self.settings.lookupd_http_addresses:
            addresses = {"nsqd_tcp_addresses": list(self.settings.nsqd_tcp_addresses)}
        self._reader = _ClosableReader(
            topic=self.topic.name,
            channel=self.channel,
            message_handler=self._on_message,
            max_tries=0,  # attempts are counted here, so pynsq never drops a message itself
            max_in_flight=self.max_in_flight,
            lookupd_poll_interval=self.settings.lookupd_poll_interval_s,
            msg_timeout=self.settings.msg_timeout_s,
            requeue_delay=int(self.settings.backoff_base_s),
            output_buffer_timeout=self.settings.output_buffer_timeout_ms,
            **addresses,
        )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def connected(self) -> bool:
        return any(conn.connected() for conn in self._reader.conns.values())

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.settings.connect_timeout_s)
        while not self.connected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer of {self.topic.name}/{self.channel} found no nsqd")
            await asyncio.sleep(POLL_S)

    async def drain(self) -> None:
        """Take no more messages, let in-flight handlers finish (or give them back), close."""
        self._draining = True
        self._reader.set_max_in_flight(0)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._reader.flush_and_close(timeout_s=5.0)
        log.info("consumer_closed", topic=self.topic.name, channel=self.channel)

    def _on_message(self, message: Any) -> None:
        message.enable_async()
        if self._draining:
            # RDY 0 was sent, but nsqd may have already pushed this one: hand it back now.
            message.requeue(time_ms=0, backoff=False)
            return
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: Any) -> None:
        started = time.monotonic()
        delivery = Delivery(message)
        with structlog.contextvars.bound_contextvars(
            topic=self.topic.name, channel=self.channel, msg_id=delivery.message_id, attempts=delivery.attempts
        ):
            try:
                payload = self.topic.decode(message.body)
            except DecodeError as error:
                log.warning("message_rejected", error=str(error))
                await self._dead_letter(message, None, str(error), started)
                return
            with structlog.contextvars.bound_contextvars(**_log_context(payload)):
                if delivery.attempts > self.settings.max_attempts:
                    # Every failure that raises is counted below, so a delivery past the last
                    # attempt means earlier ones never answered: the handler crashed its process
                    # (out of memory, a native crash) or hung past nsqd's timeout. Running it again
                    # would do the same, for ever.
                    cause = (
                        f"delivered {delivery.attempts} times, more than the {self.settings.max_attempts} "
                        "attempts allowed: earlier deliveries never answered (their consumer crashed "
                        "or hung)"
                    )
                    await self._dead_letter(message, payload, cause, started)
                    return
                await self._run_handler(message, delivery, payload, started)

    async def _run_handler(self, message: Any, delivery: Delivery, payload: M, started: float) -> None:
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive(delivery))
        self._in_flight.inc()
        try:
            await self.handler(payload, delivery)
        except asyncio.CancelledError:
            # Drain ran out of time: give the message back for another consumer.
            _respond(message, "requeue", time_ms=0, backoff=False)
            log.warning("message_requeued", reason="shutdown", seconds=_since(started))
            raise
        except PermanentError as error:
            await self._dead_letter(message, _unfinished(payload, error), f"{type(error).__name__}: {error}", started)
        except Exception as error:  # noqa: BLE001  # any other failure is worth another try
            cause = f"{type(error).__name__}: {error}"
            unfinished = _unfinished(payload, error)
            if delivery.attempts >= self.settings.max_attempts:
                await self._dead_letter(
                    message, unfinished, f"gave up after {delivery.attempts} attempts: {cause}", started
                )
            else:
                await self._requeue(message, unfinished, cause, started)
        else:
            _respond(message, "finish")
            self._ended["finished"].inc()
            # debug: one line per message is thousands a second on a busy cluster; services
            # log what a message achieved (page_ocr_done, document_split) themselves.
            log.debug("message_done", seconds=_since(started))
        finally:
            keep_alive.cancel()
            self._in_flight.dec()
            self._seconds.observe(time.monotonic() - started)

    async def _requeue(self, message: Any, payload: M, cause: str, started: float) -> None:
        attempts = int(message.attempts)
        delay = backoff_delay(attempts, self.settings)
        _respond(message, "requeue", time_ms=int(delay * 1000), backoff=False)
        self._ended["requeued"].inc()
        log.warning("message_requeued", error=cause, delay_s=delay, seconds=_since(started))
        if self.on_retry is not None:
            try:
                await self.on_retry(payload, cause, attempts)
            except Exception as error:  # noqa: BLE001  # only a report: the retry itself is queued
                log.warning("retry_report_failed", error=f"{type(error).__name__}: {error}")

    async def _dead_letter(self, message: Any, payload: M | None, cause: str, started: float) -> None:
        attempts = int(message.attempts)
        letter = DeadLetter.of(self.topic.name, self.channel, bytes(message.body), cause, attempts)
        try:
            if payload is not None and self.on_give_up is not None:
                await self.on_give_up(payload, cause, attempts)
            await self.publisher.publish(self._dead_letters, letter)
        except Exception as error:  # noqa: BLE001  # never drop: try again later instead
            delay = backoff_delay(attempts, self.settings)
            _respond(message, "requeue", time_ms=int(delay * 1000), backoff=False)
            log.error("dead_letter_failed", cause=cause, error=f"{type(error).__name__}: {error}", delay_s=delay)
            return
        _respond(message, "finish")
        self._ended["rejected" if payload is None else "dead_lettered"].inc()
        log.error("message_failed", cause=cause, dead_letter_topic=self._dead_letters.name, seconds=_since(started))

    async def _keep_alive(self, delivery: Delivery) -> None:
        interval = self.settings.msg_timeout_s / 2
        while True:
            await asyncio.sleep(interval)
            delivery.touch()


OUTCOMES = ("finished", "requeued", "dead_lettered", "rejected")


def _respond(message: Any, verb: str, **kwargs: Any) -> None:
    if not message.has_responded():
        getattr(message, verb)(**kwargs)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _unfinished(payload: M, error: BaseException) -> M:
    """What `on_retry` and `on_give_up` report on: the part of the message its handler did
    not do when the error is `Unfinished` (and names a payload of the same topic), else all of it."""
    if isinstance(error, Unfinished) and isinstance(error.remaining, type(payload)):
        return error.remaining
    return payload


def _log_context(payload: object) -> dict[str, object]:
    return {key: getattr(payload, key) for key in ("job_id", "doc_id", "page", "node_id") if hasattr(payload, key)}


@contextlib.asynccontextmanager
async def consuming(
    topic: Topic[M],
    channel: str,
    handler: Handler[M],
    *,
    publisher: NsqPublisher,
    settings: NsqSettings,
    max_in_flight: int = 1,
    on_give_up: GiveUp[M] | None = None,
    on_retry: GiveUp[M] | None = None,
) -> AsyncIterator[Consumer[M]]:
    """Consume `topic` on `channel` for the duration of the block, then drain and close."""
    consumer = Consumer(topic, channel, handler, publisher, settings, max_in_flight, on_give_up, on_retry)
    try:
        yield consumer
    finally:
        await asyncio.shield(consumer.drain())
