"""The notifier's rules, without sockets: which addresses a webhook may reach, which URLs the
gateway takes and how they are shown, what an answer means, and that one event to one URL
is always the same delivery (id and bytes)."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkocr.callback_urls import MAX_URL_CHARS, redacted, url_problem
from bulkocr.contracts import JobCompleted, PushFinished
from bulkocr_gateway.options import InvalidOptions, parse_options
from bulkocr_gateway.settings import GatewaySettings
from bulkocr_notifier.addresses import address_refusal, literal_refusal
from bulkocr_notifier.events import deliveries, job_finished, push_finished
from bulkocr_notifier.sender import answer_for
from bulkocr_notifier.settings import WebhookSettings

FINISHED_AT = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
CALLBACK = "https://hooks.example.org/ocr"
JOB: dict[str, Any] = {
    "_id": "j1",
    "status": "completed",
    "finished_at": FINISHED_AT,
    "documents_total": 2,
    "pages_total": 7,
    "pages_done": 6,
    "pages_failed": 1,
    "options": {"callback_url": CALLBACK},
}


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_addresses_a_webhook_may_not_reach_are_refused_with_their_kind(address, kind):
    refusal = address_refusal(ipaddress.ip_address(address))
    assert refusal is not None
    assert f"a {kind} address" in refusal


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_a_literal_host_is_checked_and_a_name_is_left_to_the_resolver():
    assert literal_refusal("127.0.0.1") is not None
    assert literal_refusal("[::1]") is not None
    assert literal_refusal("8.8.8.8") is None
    assert literal_refusal("hooks.example.org") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/hook", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.org/hook", "http or https"),
        ("http:///hook", "names no host"),
        ("https://exa mple.org/", "spaces or control characters"),
        ("https://example.org/\nX-Injected: 1", "spaces or control characters"),
        ("https://example.org:99999/", "not a URL"),
        ("https://example.org/" + "a" * MAX_URL_CHARS, "longer than 2000"),
    ],
)
def test_webhook_urls_that_cannot_be_used_are_refused_with_the_reason(url, reason):
    problem = url_problem(url)
    assert problem is not None
    assert reason in problem


def test_a_plain_https_url_is_accepted_and_shown_without_credentials_or_query():
    url = "https://user:pa55@Hooks.example.org:8443/ocr/done?token=abc#frag"
    assert url_problem(url) is None
    assert redacted(url) == "https://hooks.example.org:8443/ocr/done"
    assert redacted("http://[::1]:9/x?y=1") == "http://[::1]:9/x"


def test_the_gateway_takes_callback_url_from_the_form_and_refuses_a_bad_one():
    settings = GatewaySettings()
    assert parse_options({"callback_url": " https://hooks.example.org/x "}, settings).callback_url == (
        "https://hooks.example.org/x"
    )
    assert parse_options({}, settings).callback_url is None
    with pytest.raises(InvalidOptions, match="http or https"):
        parse_options({"callback_url": "file:///etc/passwd"}, settings)


def test_the_global_url_setting_is_checked_at_start():
    with pytest.raises(ValueError, match="BULKOCR_WEBHOOK_URL must be an http or https URL"):
        WebhookSettings(url="gopher://example.org/")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (400, "rejected"),
        (404, "rejected"),
        (410, "rejected"),
        (408, "retrying"),
        (429, "retrying"),
        (301, "retrying"),
        (500, "retrying"),
        (503, "retrying"),
    ],
)
def test_what_an_answer_means(status, outcome):
    """2xx delivers; a 4xx is final but 408 and 429; anything else is tried again."""
    answer = answer_for(status)
    assert (answer.outcome, answer.status_code) == (outcome, status)
    assert answer.final == (outcome != "retrying")


def test_a_job_event_says_how_it_ended_and_where_to_look():
    event = job_finished(JobCompleted(job_id="j1", status="completed"), JOB, "https://ocr.example.org/")
    assert json.loads(event.body) == {
        "event": "job.finished",
        "job_id": "j1",
        "status": "completed",
        "at": FINISHED_AT.isoformat(),
        "documents_total": 2,
        "pages_total": 7,
        "pages_done": 6,
        "pages_failed": 1,
        "status_url": "https://ocr.example.org/api/bulk/status/j1",
    }


def test_each_url_is_one_delivery_whose_id_and_body_never_change():
    """Built again (a retry, a redelivered message), the same event to the same URL has the
    same id and bytes; another URL, another finish or another push run is another delivery."""
    completed = JobCompleted(job_id="j1", status="completed")
    first = deliveries(job_finished(completed, JOB, ""), JOB, "https://ops.example.org/all")
    again = deliveries(job_finished(completed, JOB, ""), JOB, "https://ops.example.org/all")
    assert [(d.target, d.url) for d in first] == [
        ("callback", "https://hooks.example.org/ocr"),
        ("global", "https://ops.example.org/all"),
    ]
    assert [(d.delivery_id, d.event.body) for d in first] == [(d.delivery_id, d.event.body) for d in again]
    assert first[0].delivery_id != first[1].delivery_id
    refinished = {**JOB, "finished_at": datetime(2026, 12, 2, tzinfo=UTC)}
    assert deliveries(job_finished(completed, refinished, ""), JOB, "")[0].delivery_id != first[0].delivery_id
    runs = [PushFinished(job_id="j1", status="failed", error="down", at=FINISHED_AT.replace(minute=m)) for m in (1, 2)]
    pushed = [deliveries(push_finished(run, ""), JOB, "")[0].delivery_id for run in runs]
    assert len(set(pushed)) == 2


def test_the_same_url_as_callback_and_global_is_told_once():
    same = deliveries(job_finished(JobCompleted(job_id="j1", status="completed"), JOB, ""), JOB, CALLBACK)
    assert [d.target for d in same] == ["callback"]
    assert deliveries(job_finished(JobCompleted(job_id="j1", status="failed"), {"options": {}}, ""), {}, "") == []
