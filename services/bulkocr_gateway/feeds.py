"""Each job's live feed on this gateway: the aggregator's events (`bulkocr.job.events#ephemeral`,
read on a channel of this gateway's own) handed to the job's listeners, numbered, the last few
kept for listeners that reconnect. Only jobs someone listens to have a feed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic_core import to_json

from bulkocr.contracts import JobEvents
from bulkocr.nsq import Delivery

KEPT_EVENTS = 256
"""Events a job's feed keeps for listeners that reconnect."""
LISTENER_QUEUE = 1024
"""Events waiting for one slow listener; beyond that it is cut off and reconnects."""

Event = tuple[str, str, str]
"""(id, event name, JSON data)."""


@dataclass
class Feed:
    kept: deque[Event] = field(default_factory=lambda: deque(maxlen=KEPT_EVENTS))
    listeners: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    count: int = 0


@dataclass
class JobFeeds:
    """The jobs someone is listening to, on this gateway."""

    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    feeds: dict[str, Feed] = field(default_factory=dict)

    async def receive(self, message: JobEvents, delivery: Delivery) -> None:
        """The aggregator's news: to the job's listeners, if it has any here."""
        feed = self.feeds.get(message.job_id)
        if feed is None:
            return
        for event in message.events:
            feed.count += 1
            item = (f"{self.epoch}-{feed.count}", event.kind, to_json(event.data).decode())
            feed.kept.append(item)
            for queue in list(feed.listeners):
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:
                    # Too slow to keep up: cut it off; it reconnects and starts from a snapshot.
                    feed.listeners.discard(queue)
                    queue.get_nowait()
                    queue.put_nowait(None)

    @contextlib.contextmanager
    def listen(self, job_id: str) -> Iterator[tuple[Feed, asyncio.Queue[Event | None]]]:
        feed = self.feeds.setdefault(job_id, Feed())
        queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=LISTENER_QUEUE)
        feed.listeners.add(queue)
        try:
            yield feed, queue
        finally:
            feed.listeners.discard(queue)
            if not feed.listeners:
                del self.feeds[job_id]

    def missed(self, feed: Feed, last_id: str) -> list[Event] | None:
        """The events after `last_id`, if this feed still holds it; None otherwise."""
        ids = [event[0] for event in feed.kept]
        if last_id not in ids:
            return None
        return list(feed.kept)[ids.index(last_id) + 1 :]

    def close(self) -> None:
        """Shutting down: every stream ends now (its listener reconnects to another gateway)."""
        for feed in self.feeds.values():
            for queue in feed.listeners:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
