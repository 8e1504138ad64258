"""One POST of a webhook, and what its answer means: delivered, refused for good, or worth
another try later.

A 2xx answer delivers. A 4xx is the receiver's final word, except 408 (it timed out) and 429
(slow down), which are tried again like a 5xx, any other answer, a connection error or a
timeout. An address webhooks may not reach (addresses.py) is refused without a request.
Nothing here logs: the caller records and logs the answer, and error texts name the host,
never the URL's user name, password or query.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from bulkocr import __version__
from bulkocr.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from bulkocr_notifier.addresses import AddressRefused, literal_refusal
from bulkocr_notifier.events import WebhookDelivery

Outcome = Literal["delivered", "rejected", "refused", "retrying"]
RETRIED_4XX = frozenset({408, 429})
USER_AGENT = f"bulkocr-notifier/{__version__}"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        """Trying again cannot change it."""
        return self.outcome != "retrying"


def answer_for(status: int) -> Answer:
    if 200 <= status < 300:
        return Answer("delivered", status)
    if 400 <= status < 500 and status not in RETRIED_4XX:
        return Answer("rejected", status, f"the receiver answered {status}")
    return Answer("retrying", status, f"the receiver answered {status}")


def headers_for(delivery: WebhookDelivery, secret: str, now: float) -> dict[str, str]:
    """Signed now: a retry gets a fresh time (so a receiver's age check passes) over the same body."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event.name,
        DELIVERY_HEADER: delivery.delivery_id,
        SIGNATURE_HEADER: sign(secret, delivery.event.body, int(now)),
    }


async def post(
    session: aiohttp.ClientSession,
    delivery: WebhookDelivery,
    *,
    secret: str,
    timeout_s: float,
    allow_private: bool,
) -> Answer:
    if not secret:
        return Answer("refused", error="no webhook secret is configured (BULKOCR_WEBHOOK_SECRET): nothing is sent")
    host = urlsplit(delivery.url).hostname or ""
    if not allow_private and (refusal := literal_refusal(host)) is not None:
        return Answer("refused", error=f"not sent: {refusal}")
    try:
        async with session.post(
            delivery.url,
            data=delivery.event.body,
            headers=headers_for(delivery, secret, time.time()),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            # A redirect is an answer like any other non-2xx: following it would go where
            # no check was made.
            allow_redirects=False,
        ) as response:
            return answer_for(response.status)
    except aiohttp.ClientConnectorError as error:
        if isinstance(error.__cause__, AddressRefused):
            return Answer("refused", error=f"not sent: {error.__cause__}")
        return Answer("retrying", error=f"cannot connect to {host}: {error.os_error.strerror or error.os_error}")
    except TimeoutError:
        return Answer("retrying", error=f"no answer within {timeout_s:g} s")
    except aiohttp.InvalidURL:
        return Answer("refused", error="not a URL aiohttp can send to")
    except aiohttp.ClientError as error:
        return Answer("retrying", error=f"{type(error).__name__}: {error}")
