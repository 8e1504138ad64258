"""nsqd's HTTP API: create topics and channels up front, read stats and backlogs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bulkocr.contracts import SUBSCRIPTIONS, dead_letter_subscriptions
from bulkocr.errors import PublishError
from bulkocr.settings import NsqSettings


class NsqAdmin:
    """Create topics/channels before use and read stats, over nsqd's HTTP port."""

    def __init__(self, session: aiohttp.ClientSession, nsqd_http_address: str) -> None:
        self._session = session
        self._base = f"http://{nsqd_http_address}"

    async def create_topic(self, topic: str) -> None:
        await self._post("/topic/create", topic=topic)

    async def create_channel(self, topic: str, channel: str) -> None:
        """A channel made before publishing receives every message (one made later does not)."""
        await self.create_topic(topic)
        await self._post("/channel/create", topic=topic, channel=channel)

    async def stats(self, topic: str | None = None) -> dict[str, Any]:
        params = {"format": "json", **({"topic": topic} if topic else {})}
        async with self._session.get(f"{self._base}/stats", params=params) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def channel_stats(self, topic: str, channel: str) -> dict[str, Any] | None:
        for entry in (await self.stats(topic)).get("topics") or []:  # nsqd says null when it has none
            if entry["topic_name"] == topic:
                for stats in entry["channels"]:
                    if stats["channel_name"] == channel:
                        result: dict[str, Any] = stats
                        return result
        return None

    async def _post(self, path: str, **params: str) -> None:
        async with self._session.post(f"{self._base}{path}", params=params) as response:
            if response.status != 200:
                raise PublishError(f"nsqd {path} {params}: {response.status} {await response.text()}")


async def create_channels(settings: NsqSettings) -> None:
    """Create every channel of the queue topology (`contracts.SUBSCRIPTIONS`, and the keeper's
    on every dead-letter topic) on nsqd before
    anything is published: nsqd gives a message only to the channels that exist when it
    arrives. Every service does this as it starts, so whichever starts first makes them all."""
    async with aiohttp.ClientSession() as session:
        admin = NsqAdmin(session, settings.nsqd_http_address)
        for topic, channel in (*SUBSCRIPTIONS, *dead_letter_subscriptions(settings.dead_letter_suffix)):
            await admin.create_channel(topic.name, channel)


def nsqd_check(session: aiohttp.ClientSession, settings: NsqSettings) -> Callable[[], Awaitable[None]]:
    """A readiness check: the nsqd this process publishes to answers its /ping."""

    async def ping() -> None:
        async with session.get(f"http://{settings.nsqd_http_address}/ping") as response:
            response.raise_for_status()

    return ping


async def local_nsqd(session: aiohttp.ClientSession, settings: NsqSettings) -> NsqSettings:
    """The settings with the nsqd registered under `local_nsqd_hostname` (the nsqd of this
    service's node) as the one to publish to; unchanged without that setting. Waits up to
    the connect timeout for it to register (it may start after this service)."""
    if not settings.local_nsqd_hostname:
        return settings
    deadline = asyncio.get_running_loop().time() + settings.connect_timeout_s
    while True:
        for lookupd in settings.lookupd_http_addresses:
            url = lookupd if "://" in lookupd else f"http://{lookupd}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}/nodes") as response:
                    body = await response.json(content_type=None)
                for producer in body.get("producers", []):
                    if producer.get("hostname") == settings.local_nsqd_hostname:
                        address = producer["broadcast_address"]
                        return settings.model_copy(
                            update={
                                "nsqd_tcp_addresses": [f"{address}:{producer['tcp_port']}"],
                                "nsqd_http_address": f"{address}:{producer['http_port']}",
                            }
                        )
        if asyncio.get_running_loop().time() > deadline:
            raise PublishError(f"no nsqd registered as {settings.local_nsqd_hostname!r} with nsqlookupd")
        await asyncio.sleep(1.0)


async def backlog(session: aiohttp.ClientSession, settings: NsqSettings, topic: str, channel: str) -> int:
    """Messages of `topic` not yet finished on `channel`, summed over every nsqd that has the topic:
    queued, in flight and deferred (the topic's own depth where the channel does not exist yet)."""
    total = 0
    for address in await _nsqd_http_addresses(session, settings, topic):
        admin = NsqAdmin(session, address)
        stats = await admin.stats(topic)
        for entry in stats.get("topics") or []:
            if entry["topic_name"] != topic:
                continue
            channels = [c for c in entry.get("channels") or [] if c["channel_name"] == channel]
            if not channels:
                total += int(entry.get("depth", 0))
            for found in channels:
                total += int(found["depth"]) + int(found["in_flight_count"]) + int(found["deferred_count"])
    return total


async def _nsqd_http_addresses(session: aiohttp.ClientSession, settings: NsqSettings, topic: str) -> list[str]:
    if not settings.lookupd_http_addresses:
        return [settings.nsqd_http_address]
    addresses: set[str] = set()
    for lookupd in settings.lookupd_http_addresses:
        url = lookupd if "://" in lookupd else f"http://{lookupd}"
        async with session.get(f"{url}/lookup", params={"topic": topic}) as response:
            if response.status == 404:  # no nsqd has the topic yet
                continue
            response.raise_for_status()
            body = await response.json(content_type=None)
        for producer in body.get("producers", []):
            addresses.add(f"{producer['broadcast_address']}:{producer['http_port']}")
    return sorted(addresses)
