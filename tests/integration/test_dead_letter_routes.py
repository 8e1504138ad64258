"""The admin routes over kept dead letters: only administrators, clear refusals, and a replay
that puts the body back on its topic exactly as it was received."""

from __future__ import annotations

import pytest

from bulkocr.contracts import DeadLetter, Topic
from bulkocr.mongo import Database, DeadLetterStore
from bulkocr.nsq import NsqAdmin, consuming
from bulkocr.settings import NsqSettings
from bulkocr.wire import Message
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


class Echo(Message):
    word: str


async def kept(db: Database, topic: str, body: str, *, truncated: bool = False, body_bytes: int = 0) -> str:
    cause = "the disk was full"
    letter = DeadLetter(
        topic=topic, channel="c", body=body, cause=cause, attempts=5, truncated=truncated, body_bytes=body_bytes
    )
    letters = DeadLetterStore(db)
    assert await letters.keep(letter)
    assert not await letters.keep(letter), "a letter delivered again is the same record"
    [found] = [record for record in await letters.list() if record["topic"] == topic]
    return str(found["_id"])


async def test_only_administrators_see_dead_letters(start_gateway, db):
    api = await start_gateway(admin_owners=["alice"])
    letter_id = await kept(db, "bulkocr.job.completed", '{"v": "1.0", "job_id": "j1", "status": "completed"}')
    response = await api.get("/api/admin/dead-letters", headers=BOB)
    assert response.status == 403
    assert "BULKOCR_ADMIN_OWNERS" in (await response.json())["error"]
    assert (await api.post(f"/api/admin/dead-letters/{letter_id}/replay", headers=BOB)).status == 403
    listed = await (await api.get("/api/admin/dead-letters?topic=bulkocr.job.completed", headers=ALICE)).json()
    assert [(entry["id"], entry["job_id"], entry["cause"]) for entry in listed["dead_letters"]] == [
        (letter_id, "j1", "the disk was full")
    ]
    assert listed["counts"]["bulkocr.job.completed"] == 1
    assert "body" not in listed["dead_letters"][0]
    shown = await (await api.get(f"/api/admin/dead-letters/{letter_id}", headers=ALICE)).json()
    assert shown["body"].startswith('{"v": "1.0"')


@pytest.mark.parametrize(("query", "status"), [("limit=0", 400), ("limit=501", 400), ("limit=ten", 400)])
async def test_a_bad_listing_is_refused_with_the_reason(start_gateway, query, status):
    api = await start_gateway(admin_owners=["alice"])
    response = await api.get(f"/api/admin/dead-letters?{query}", headers=ALICE)
    assert response.status == status
    assert "limit" in (await response.json())["error"]


async def test_unknown_and_truncated_letters_are_refused(start_gateway, db):
    api = await start_gateway(admin_owners=["alice"])
    assert (await api.post("/api/admin/dead-letters/nope/replay", headers=ALICE)).status == 404
    assert (await api.delete("/api/admin/dead-letters/nope", headers=ALICE)).status == 404
    letter_id = await kept(db, "bulkocr.document", '{"v": "1.0", "job_id"', truncated=True, body_bytes=2_000_000)
    response = await api.post(f"/api/admin/dead-letters/{letter_id}/replay", headers=ALICE)
    assert response.status == 409
    assert "cannot be replayed" in (await response.json())["error"]


async def test_a_replay_publishes_the_body_as_received_and_is_counted(
    start_gateway, db, topic_name: str, nsq_admin: NsqAdmin, nsq_settings: NsqSettings, publisher
):
    """The message comes back on its own topic byte for byte; the letter says it was replayed;
    a dropped letter is gone."""
    api = await start_gateway(admin_owners=["alice"])
    topic = Topic(topic_name, Echo)
    await nsq_admin.create_channel(topic_name, "c")
    body = '{"v":"1.0","word":"again"}'
    letter_id = await kept(db, topic_name, body)
    received: list[Echo] = []

    async def handle(echo: Echo, delivery: object) -> None:
        received.append(echo)

    async with consuming(topic, "c", handle, publisher=publisher, settings=nsq_settings):
        response = await api.post(f"/api/admin/dead-letters/{letter_id}/replay", headers=ALICE)
        assert response.status == 202
        assert (await response.json())["replays"] == 1
        await eventually(lambda: received == [Echo(word="again")], what="the replayed message")
    listed = await (await api.get(f"/api/admin/dead-letters?topic={topic_name}", headers=ALICE)).json()
    assert listed["dead_letters"][0]["replays"] == 1
    assert (await api.delete(f"/api/admin/dead-letters/{letter_id}", headers=ALICE)).status == 204
    assert (await api.get(f"/api/admin/dead-letters/{letter_id}", headers=ALICE)).status == 404
