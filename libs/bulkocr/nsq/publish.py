"""Publishing to nsqd: awaitable publish, multi-publish and deferred publish that return once
nsqd has answered OK, and raise `PublishError` otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import nsq  # pynsq ships no type information: see [[tool.mypy.overrides]]

from bulkocr.contracts import M, Topic
from bulkocr.errors import PublishError
from bulkocr.metrics import PUBLISHED
from bulkocr.nsq.admin import create_channels
from bulkocr.settings import NsqSettings

# nsqd refuses an MPUB body over --max-body-size (5 MiB by default); stay well below it.
_MPUB_MAX_BYTES = 4 * 1024 * 1024
_MPUB_MAX_COUNT = 500
POLL_S = 0.05


class _ClosableWriter(nsq.Writer):  # type: ignore[misc]  # the base class is untyped
    """pynsq's Writer has no close(); this one stops reconnecting once closing."""

    closing = False

    def connect_to_nsqd(self, host: str, port: int) -> None:
        if not self.closing:
            super().connect_to_nsqd(host, port)

    def _on_connection_close(self, conn: Any, **kwargs: Any) -> None:
        if not self.closing:
            super()._on_connection_close(conn, **kwargs)
            return
        self.conns.pop(conn.id, None)
        for callback in conn.callback_queue:
            callback(conn, nsq.protocol.ConnectionClosedError())
        conn.callback_queue.clear()

    def _on_connection_error(self, conn: Any, error: Any, **kwargs: Any) -> None:
        if not self.closing:  # closing our own socket makes pynsq report a framing error
            super()._on_connection_error(conn, error, **kwargs)

    def close(self) -> None:
        self.closing = True
        for conn in list(self.conns.values()):
            conn.close()


class NsqPublisher:
    """Publishes typed messages to nsqd and waits for nsqd's answer.

    Before its first message to a topic it creates that topic's channels on its nsqd (a
    channel made after a message misses it). Only then: an nsqd that holds a topic registers
    it with nsqlookupd, and every consumer of the topic connects to it and spreads its
    max_in_flight over the connections. With an nsqd per node, a topic made everywhere at
    start left each worker's one or two pages of credit mostly on nsqds that never get a page.
    """

    def __init__(self, settings: NsqSettings) -> None:
        self._settings = settings
        self._topics_ready: set[str] = set()
        self._writer = _ClosableWriter(
            list(settings.nsqd_tcp_addresses), reconnect_interval=settings.reconnect_interval_s
        )

    async def __aenter__(self) -> NsqPublisher:
        await self.wait_connected()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return any(conn.connected() for conn in self._writer.conns.values())

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Return once a connection to nsqd is open; `PublishError` after the timeout."""
        deadline = time.monotonic() + (timeout_s or self._settings.connect_timeout_s)
        while not self.connected:
            if time.monotonic() > deadline:
                raise PublishError(f"no connection to nsqd at {self._settings.nsqd_tcp_addresses}")
            await asyncio.sleep(POLL_S)

    def close(self) -> None:
        self._writer.close()

    async def publish(self, topic: Topic[M], message: M) -> None:
        await self._send("pub", topic.name, topic.encode(message))
        PUBLISHED.labels(topic.name).inc()

    async def publish_many(self, topic: Topic[M], messages: Sequence[M]) -> None:
        """MPUB in chunks that fit nsqd's body limit. Not atomic: a failed chunk may be
        partly enqueued, and publishing it again can duplicate (consumers are idempotent)."""
        bodies = [topic.encode(message) for message in messages]
        for chunk in _chunks(bodies):
            await self._send("mpub", topic.name, chunk)
            PUBLISHED.labels(topic.name).inc(len(chunk))

    async def publish_deferred(self, topic: Topic[M], message: M, delay_s: float) -> None:
        """DPUB: delivered after the delay (kept in nsqd's memory, so lost if nsqd crashes)."""
        await self._send("dpub", topic.name, topic.encode(message), delay_ms=int(delay_s * 1000))
        PUBLISHED.labels(topic.name).inc()

    async def publish_body(self, topic_name: str, body: bytes) -> None:
        """Publish raw bytes (used to replay dead letters exactly as received)."""
        await self._send("pub", topic_name, body)

    async def _send(
        self, command: str, topic_name: str, body: bytes | list[bytes], *, delay_ms: int | None = None
    ) -> None:
        # A dropped connection is retried until the deadline (it may duplicate, never lose);
        # an error frame from nsqd itself (E_BAD_TOPIC, E_BAD_MESSAGE...) is final.
        deadline = time.monotonic() + self._settings.publish_timeout_s
        while True:
            answer = await self._send_once(command, topic_name, body, delay_ms, deadline)
            if not isinstance(answer, nsq.Error):
                return
            transient = type(answer) is not nsq.Error
            if not transient or time.monotonic() > deadline:
                raise PublishError(f"nsqd refused {command} to {topic_name}: {answer}")
            await asyncio.sleep(POLL_S)

    async def _make_channels(self, topic_name: str) -> None:
        if topic_name in self._topics_ready:
            return
        try:
            await create_channels(self._settings, [topic_name])
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PublishError(f"could not create the channels of {topic_name} on nsqd: {error!r}") from error
        self._topics_ready.add(topic_name)

    async def _send_once(
        self,
        command: str,
        topic_name: str,
        body: bytes | list[bytes],
        delay_ms: int | None,
        deadline: float,
    ) -> Any:
        try:
            await self.wait_connected(max(deadline - time.monotonic(), POLL_S))
            await self._make_channels(topic_name)
        except PublishError as error:
            return nsq.protocol.SendError(str(error))
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_answer(conn: Any, data: Any) -> None:
            if not answer.done():
                answer.set_result(data)

        if command == "dpub":
            self._writer.dpub(topic_name, delay_ms, body, callback=on_answer)
        else:
            getattr(self._writer, command)(topic_name, body, callback=on_answer)
        try:
            return await asyncio.wait_for(answer, max(deadline - time.monotonic(), POLL_S))
        except TimeoutError:
            raise PublishError(f"nsqd did not answer {command} to {topic_name} in time") from None


def _chunks(bodies: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for body in bodies:
        if chunks[-1] and (size + len(body) > _MPUB_MAX_BYTES or len(chunks[-1]) >= _MPUB_MAX_COUNT):
            chunks.append([])
            size = 0
        chunks[-1].append(body)
        size += len(body) + 4
    return [chunk for chunk in chunks if chunk]
