"""Admin routes over the dead letters the aggregator keeps: list, read, replay, drop.

Only owners named in `BULKOCR_ADMIN_OWNERS` may use them: a letter's body can belong to any
owner's job. A replay sends the body, exactly as received, back to its topic; a page task is
replayed as its job's "retry failed pages" (its failure was stored, and a page's outcome is
written once, so reading it again needs the failure reopened, which only the aggregator does).
A letter cut down to fit nsqd (`truncated`) is a summary and cannot be replayed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bulkocr.contracts import JOB_RETRY, PAGE_BATCH, JobRetry
from bulkocr.errors import PublishError
from bulkocr_gateway.http import error_response, fail, json_response
from bulkocr_gateway.keys import DEAD_LETTERS, OWNER, PUBLISHER, SETTINGS

dead_letter_routes = web.RouteTableDef()

MAX_LIST = 500


class DeadLetterSummary(BaseModel):
    id: str
    topic: str
    channel: str
    cause: str
    attempts: int
    at: datetime
    truncated: bool = False
    body_bytes: int = 0
    job_id: str | None = None
    doc_id: str | None = None
    page: int | None = None
    replays: int = 0
    replayed_at: datetime | None = None


class DeadLetterView(DeadLetterSummary):
    body: str


class DeadLetterList(BaseModel):
    counts: dict[str, int]
    dead_letters: list[DeadLetterSummary]


class Replayed(BaseModel):
    id: str
    topic: str
    replays: int
    how: str


def _admin(request: web.Request) -> None:
    if request[OWNER] not in request.app[SETTINGS].admin_owners:
        fail(web.HTTPForbidden, "dead letters are for administrators: add this owner to BULKOCR_ADMIN_OWNERS")


def _view(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "id": record["_id"]}


@dead_letter_routes.get("/api/admin/dead-letters")
async def list_dead_letters(request: web.Request) -> web.Response:
    """The newest letters first (`topic` filters, `limit` up to 500), and how many each topic holds."""
    _admin(request)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    if not 1 <= limit <= MAX_LIST:
        return error_response(400, f"limit must be between 1 and {MAX_LIST}")
    store = request.app[DEAD_LETTERS]
    letters = await store.list(topic=request.query.get("topic") or None, limit=limit)
    found = DeadLetterList(
        counts=await store.count_by_topic(),
        dead_letters=[DeadLetterSummary.model_validate(_view(letter)) for letter in letters],
    )
    return json_response(found)


async def _letter(request: web.Request) -> dict[str, Any]:
    _admin(request)
    letter = await request.app[DEAD_LETTERS].get(request.match_info["letter_id"])
    if letter is None:
        fail(web.HTTPNotFound, f"no dead letter {request.match_info['letter_id']}")
    return letter


@dead_letter_routes.get("/api/admin/dead-letters/{letter_id}")
async def get_dead_letter(request: web.Request) -> web.Response:
    return json_response(DeadLetterView.model_validate(_view(await _letter(request))))


@dead_letter_routes.post("/api/admin/dead-letters/{letter_id}/replay")
async def replay_dead_letter(request: web.Request) -> web.Response:
    """Send the letter back where it came from (fix its cause first); 202."""
    letter = await _letter(request)
    if letter.get("truncated"):
        return error_response(409, "this letter keeps only the start of its message: it cannot be replayed")
    publisher = request.app[PUBLISHER]
    try:
        if letter["topic"] == PAGE_BATCH.name and isinstance(job_id := letter.get("job_id"), str):
            await publisher.publish(JOB_RETRY, JobRetry(job_id=job_id))
            how = f"the failed pages of job {job_id} are read again"
        else:
            await publisher.publish_body(letter["topic"], letter["body"].encode())
            how = f"the message was published to {letter['topic']} again"
    except PublishError as error:
        return error_response(503, f"nsqd did not take the replay: {error}")
    replays = int(letter.get("replays") or 0) + 1
    await request.app[DEAD_LETTERS].mark_replayed(letter["_id"], replays)
    return json_response(Replayed(id=letter["_id"], topic=letter["topic"], replays=replays, how=how), status=202)


@dead_letter_routes.delete("/api/admin/dead-letters/{letter_id}")
async def drop_dead_letter(request: web.Request) -> web.Response:
    letter = await _letter(request)
    await request.app[DEAD_LETTERS].drop(letter["_id"])
    return web.Response(status=204)
