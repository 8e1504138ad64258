"""Webhook signatures: how the notifier signs what it POSTs and how a receiver checks it.

The header is `X-Bulkocr-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
HMAC-SHA256 under the shared secret of `"<t>.<raw body>"`. The time is signed with the
body, so a receiver that refuses an old `t` refuses a replayed request too; the comparison
is constant-time, so the answer's timing tells an attacker nothing about the right value.
Pure and dependency-free (the stdlib's hmac): receivers may copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Bulkocr-Signature"
DELIVERY_HEADER = "X-Bulkocr-Delivery"
EVENT_HEADER = "X-Bulkocr-Event"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
"""A signature older (or further ahead) than this is refused: five minutes of clock skew and
transit, and no more room for a replay."""


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(_secret_bytes(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The `X-Bulkocr-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int | None, list[str]]:
    """The header's time and its v1 signatures (several may come while a secret is rotated)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def verify(secret: str | bytes, header: str, body: bytes, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """True if `header` signs exactly `body` under `secret` and its time is within
    `tolerance_s` of `now` (unix seconds). Pass the body's raw bytes, as received: parsed and
    serialised again, JSON need not come out the same."""
    timestamp, signatures = _parse(header)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    # Every candidate is compared, so the time taken does not tell which one was close.
    matches = [hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in signatures]
    return any(matches)
