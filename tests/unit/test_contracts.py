"""Every topic's payload survives the wire, and anything else is refused at the edge."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bulkocr.contracts import (
    ALL_TOPICS,
    JOB_SUBMITTED,
    PAGE_BATCH,
    PAGES_READY,
    DecodeError,
    JobOptions,
    JobSubmitted,
    Message,
    MessageVersion,
    PageBatch,
    PagesReady,
    PageTask,
    Topic,
    dead_letter_topic,
)
from bulkocr.wire import read_stored


def job() -> JobSubmitted:
    return JobSubmitted(job_id="j1", owner="alice", documents_total=5000)


def test_messages_round_trip_through_their_topic():
    """encode then decode gives an equal message."""
    assert JOB_SUBMITTED.decode(JOB_SUBMITTED.encode(job())) == job()
    ready = PagesReady(job_id=PAGE_JOB, doc_id="d0001", tasks=tuple(page_task(n) for n in range(1, 51)))
    assert PAGES_READY.decode(PAGES_READY.encode(ready)) == ready


PAGE_JOB = "0123456789abcdef0123456789abcdef"


def page_task(page: int) -> PageTask:
    image = f"jobs/{PAGE_JOB}/pages/d0001/{page:05d}.png"
    return PageTask(job_id=PAGE_JOB, doc_id="d0001", page=page, image=image, dpi=300, engine="rapidocr")


def test_no_message_grows_with_the_job():
    """A job of 5,000 documents is announced in a few dozen bytes, and a batch of pages ready
    (ingest's publish batch) stays far below nsqd's 1 MiB message limit."""
    assert len(JOB_SUBMITTED.encode(job())) < 100
    ready = PagesReady(job_id=PAGE_JOB, doc_id="d0001", tasks=tuple(page_task(n) for n in range(1, 501)))
    assert len(PAGES_READY.encode(ready)) < 256 * 1024


def test_topic_names_are_valid_and_unique():
    """Every topic name is a legal NSQ name (<=64 chars of [.a-zA-Z0-9_-], `#ephemeral` only
    last) and no two are the same; an ephemeral topic's dead letters stay ephemeral."""
    names = [topic.name for topic in ALL_TOPICS]
    assert len(set(names)) == len(names)
    for name in [*names, *(dead_letter_topic(n).name for n in names)]:
        assert len(name) <= 64
        base = name.removesuffix("#ephemeral")
        assert all(char.isalnum() or char in "._-" for char in base), name
    assert dead_letter_topic("bulkocr.job.events#ephemeral").name == "bulkocr.job.events.dlq#ephemeral"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"v": 2, "job_id": "j"}',
        b'{"v": 1}',
        b'{"v": 1, "job_id": "j", "tasks": []}',
        b'{"v": 1, "job_id": "j", "tasks": [{"job_id": "j", "doc_id": "d", "page": 0, "image": "k", "dpi": 1, '
        b'"engine": "null"}]}',
    ],
)
def test_invalid_bodies_are_a_decode_error(body: bytes):
    """Garbage, a future version, missing fields or out-of-range values raise DecodeError naming the topic."""
    with pytest.raises(DecodeError, match=PAGE_BATCH.name):
        PAGE_BATCH.decode(body)


def test_a_batch_of_pages_belongs_to_one_job():
    """A worker checks one job's cancellation and reports one job's pages per batch: a batch
    that mixes jobs is refused at the edge."""
    mine = PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null")
    theirs = mine.model_copy(update={"job_id": "other"})
    assert PAGE_BATCH.decode(PAGE_BATCH.encode(PageBatch(job_id="j", tasks=(mine, mine)))).tasks == (mine, mine)
    with pytest.raises(ValidationError, match="belongs to its job"):
        PageBatch(job_id="j", tasks=(mine, theirs))


def test_a_batch_of_pages_of_a_newer_minor_version_is_read_without_their_new_fields():
    """A rolling update: a batch, and each page in it, from a producer one minor version
    ahead, with fields this worker does not know, is read without them."""
    task = PageTask(job_id="j", doc_id="d", page=3, image="k", dpi=300, engine="null")
    newer = {**task.model_dump(mode="json"), "v": "1.1", "deskew": {"degrees": 0.5}}
    body = {"v": "1.1", "job_id": "j", "tasks": [newer], "priority": 2}
    read = PAGE_BATCH.decode(json.dumps(body).encode())
    assert read.tasks == (task.model_copy(update={"v": "1.1"}),)


def test_unknown_fields_are_refused():
    """A payload with a field its own version does not have is invalid (no silent drift)."""
    task = PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null")
    body = PAGE_BATCH.encode(PageBatch(job_id="j", tasks=(task,)))
    assert b'"v":"1.0"' in body
    with pytest.raises(DecodeError, match="surprise"):
        PAGE_BATCH.decode(body.replace(b'"v":"1.0"', b'"v":"1.0","surprise":1', 1))


class Reading(Message):
    """A payload as an older consumer knows it."""

    n: int
    tasks: tuple[PageTask, ...] = ()


class ReadingWithColour(Message):
    """The same payload one minor version later: a field added, with a default."""

    v: MessageVersion = "1.1"
    n: int
    tasks: tuple[PageTask, ...] = ()
    colour: str = "red"


OLD, NEW = Topic("t", Reading), Topic("t", ReadingWithColour)


def test_a_newer_minor_version_is_read_without_its_new_fields():
    """A rolling update: an older consumer reads what an updated producer sends, dropping the
    fields it does not know, at any depth; an updated consumer reads what an older one sent."""
    task = PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null")
    body = NEW.encode(ReadingWithColour(n=7, tasks=(task,), colour="blue"))
    # the nested task also gained a field in the newer producer
    body = body.replace(b'"engine":"null"', b'"engine":"null","priority":3')
    read = OLD.decode(body)
    assert (read.n, read.tasks, read.v) == (7, (task,), "1.1")
    assert NEW.decode(OLD.encode(Reading(n=7))) == ReadingWithColour(n=7, v="1.0")


def test_a_newer_minor_version_still_checks_the_fields_it_shares():
    """Dropping what is new does not excuse a wrong value in a known field."""
    body = NEW.encode(ReadingWithColour(n=7)).replace(b'"n":7', b'"n":"seven"')
    with pytest.raises(DecodeError, match="n"):
        OLD.decode(body)


@pytest.mark.parametrize("version", ["2.0", "2.3", "0.9"])
def test_another_major_version_is_refused_with_the_reason(version: str):
    """A new major version changes meaning: the consumer refuses it, saying why, even when its
    fields would validate (the consumer dead-letters it for a newer consumer to replay)."""
    body = OLD.encode(Reading(n=7)).replace(b'"v":"1.0"', f'"v":"{version}"'.encode())
    with pytest.raises(DecodeError, match=f"version {version} has another major version"):
        OLD.decode(body)
    with pytest.raises(DecodeError, match=f"version {version} has another major version"):
        OLD.decode(body.replace(b'"n":7', b'"n":7,"shape":"new"'))


def test_messages_from_before_minor_versions_are_version_1_0():
    """Messages stored or queued before versions had a minor part (`"v": 1`) still read."""
    assert OLD.decode(b'{"v": 1, "n": 7}') == Reading(n=7)
    with pytest.raises(DecodeError):
        OLD.decode(b'{"v": "one", "n": 7}')


def test_messages_are_immutable_and_typed_per_topic():
    """Payloads are frozen, and a topic refuses another topic's model."""
    task = PageTask(job_id="j", doc_id="d", page=1, image="k", dpi=300, engine="null")
    with pytest.raises(ValidationError):
        task.page = 2
    with pytest.raises(TypeError):
        JOB_SUBMITTED.encode(task)  # type: ignore[arg-type]


def test_a_record_stored_by_a_newer_minor_version_reads_like_its_message():
    """Job options stored by an updated gateway (a newer minor, a field more) are read by an
    ingest not yet updated; a record of its own version with a field it does not know is not."""
    stored = {"v": "1.9", "dpi": 200, "engine": "null", "colour_profile": "sRGB"}
    assert read_stored(JobOptions, stored) == JobOptions(v="1.9", dpi=200, engine="null")
    assert stored["colour_profile"] == "sRGB", "the record itself is left as it was"
    with pytest.raises(ValidationError):
        read_stored(JobOptions, {**stored, "v": JobOptions.model_fields["v"].default})
