"""Webhook signatures (bulkocr.webhooks): what the notifier signs, a receiver verifies, and
nothing else passes: not a changed body, another secret, an old or a future time."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bulkocr.webhooks import DEFAULT_TOLERANCE_S, sign, verify

SECRET = "s3cret-for-tests"
BODY = b'{"event":"job.finished","job_id":"j1","status":"completed"}'
SENT_AT = 1_800_000_000


def test_a_signed_body_verifies_and_the_header_is_the_documented_hmac():
    """The header is t=<seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">, computed here by hand."""
    header = sign(SECRET, BODY, SENT_AT)
    expected = hmac.new(SECRET.encode(), f"{SENT_AT}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={SENT_AT},v1={expected}"
    assert verify(SECRET, header, BODY, now=SENT_AT + 1)
    assert verify(SECRET.encode(), header, BODY, now=SENT_AT + DEFAULT_TOLERANCE_S)


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b"completed", b"cancelled"),
        BODY + b" ",
        b"",
    ],
)
def test_a_tampered_body_is_refused(body):
    """One changed byte, a byte added, or no body at all: the signature no longer holds."""
    assert not verify(SECRET, sign(SECRET, BODY, SENT_AT), body, now=SENT_AT)


def test_another_secret_is_refused():
    assert not verify("another secret", sign(SECRET, BODY, SENT_AT), BODY, now=SENT_AT)


def test_a_signature_too_old_or_from_the_future_is_refused():
    """Past the tolerance either way, a captured request cannot be replayed; the tolerance is the caller's."""
    header = sign(SECRET, BODY, SENT_AT)
    assert not verify(SECRET, header, BODY, now=SENT_AT + DEFAULT_TOLERANCE_S + 1)
    assert not verify(SECRET, header, BODY, now=SENT_AT - DEFAULT_TOLERANCE_S - 1)
    assert verify(SECRET, header, BODY, now=SENT_AT + 3600, tolerance_s=3601)


def test_a_moved_timestamp_is_refused():
    """The time is signed with the body: a replay with a fresh `t` and the old hex fails."""
    old = sign(SECRET, BODY, SENT_AT)
    moved = old.replace(f"t={SENT_AT}", f"t={SENT_AT + 600}")
    assert not verify(SECRET, moved, BODY, now=SENT_AT + 600)


@pytest.mark.parametrize(
    "header",
    ["", "v1=abc", f"t={SENT_AT}", f"t=soon,v1={'0' * 64}", "garbage", f"t={SENT_AT},v2={'0' * 64}"],
)
def test_malformed_headers_are_refused(header):
    assert not verify(SECRET, header, BODY, now=SENT_AT)


def test_any_of_several_signatures_may_match():
    """While a secret is rotated a sender may sign with both: either one is enough."""
    good = sign(SECRET, BODY, SENT_AT)
    header = f"t={SENT_AT},v1={'0' * 64},{good.split(',')[1]}"
    assert verify(SECRET, header, BODY, now=SENT_AT)
