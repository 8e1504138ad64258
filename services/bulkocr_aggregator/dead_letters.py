"""The keeper: every dead letter any consumer wrote is kept in the database, where an operator
lists, reads, replays or drops it (the gateway's admin routes, `bulkocr dlq`)."""

from __future__ import annotations

import functools

import structlog

from bulkocr.contracts import KEEPER_CHANNEL, DeadLetter, dead_letter_subscriptions
from bulkocr.mongo import DeadLetterStore
from bulkocr.nsq import Delivery
from bulkocr.service import Subscription

log = structlog.get_logger(__name__)


async def keep_letter(letter: DeadLetter, delivery: Delivery, *, store: DeadLetterStore) -> None:
    if await store.keep(letter):
        log.warning("dead_letter_kept", topic=letter.topic, channel=letter.channel, cause=letter.cause[:300])


def keeper_subscriptions(store: DeadLetterStore, suffix: str) -> list[Subscription]:
    handler = functools.partial(keep_letter, store=store)
    return [Subscription(topic, KEEPER_CHANNEL, handler) for topic, _ in dead_letter_subscriptions(suffix)]
