"""Every topic's payload survives the wire, and anything else is refused at the edge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bulkocr.contracts import (
    ALL_TOPICS,
    JOB_SUBMITTED,
    PAGE,
    DecodeError,
    DocumentRef,
    JobOptions,
    JobSubmitted,
    PageTask,
    dead_letter_topic,
)


def job() -> JobSubmitted:
    return JobSubmitted(
        job_id="j1",
        owner="alice",
        documents=(DocumentRef(doc_id="d1", filename="scan.pdf", blob="jobs/j1/uploads/d1", size=10, sha256="ab"),),
        options=JobOptions(language="en", dpi=300),
    )


def test_messages_round_trip_through_their_topic():
    """encode then decode gives an equal message."""
    assert JOB_SUBMITTED.decode(JOB_SUBMITTED.encode(job())) == job()


def test_topic_names_are_valid_and_unique():
    """Every topic name is a legal NSQ name (<=64 chars of [.a-zA-Z0-9_-]) and no two are the same."""
    names = [topic.name for topic in ALL_TOPICS]
    assert len(set(names)) == len(names)
    for name in [*names, *(dead_letter_topic(n).name for n in names)]:
        assert len(name) <= 64
        assert all(char.isalnum() or char in "._-" for char in name)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"v": 2, "job_id": "j"}', b'{"v": 1}', b'{"v": 1, "job_id": "j", "doc_id": "d", "page": 0}'],
)
def test_invalid_bodies_are_a_decode_error(body: bytes):
    """Garbage, a future version, missing fields or out-of-range values raise DecodeError naming the topic."""
    with pytest.raises(DecodeError, match=PAGE.name):
        PAGE.decode(body)


def test_unknown_fields_are_refused():
    """A payload with a field the contract does not have is invalid (no silent drift)."""
    body = PAGE.encode(PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null"))
    with pytest.raises(DecodeError):
        PAGE.decode(body.replace(b'"v":1', b'"v":1,"surprise":1'))


def test_messages_are_immutable_and_typed_per_topic():
    """Payloads are frozen, and a topic refuses another topic's model."""
    task = PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null")
    with pytest.raises(ValidationError):
        task.page = 2
    with pytest.raises(TypeError):
        JOB_SUBMITTED.encode(task)  # type: ignore[arg-type]
