"""`bulkocr dlq list|show|replay|drop`: the dead letters the system kept, through the
gateway's admin routes (the token's owner must be in the gateway's BULKOCR_ADMIN_OWNERS)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

import aiohttp

from bulkocr_client.client import GatewayError, answer_json, could_not

Action = Literal["list", "show", "replay", "drop"]
_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=30)


@dataclass(frozen=True)
class DeadLetterRequest:
    action: Action
    url: str
    token: str
    letter_id: str | None = None
    topic: str | None = None
    limit: int = 50
    as_json: bool = False


def _table(found: dict[str, object], out: TextIO) -> None:
    counts = found["counts"]
    assert isinstance(counts, dict)
    for topic, count in sorted(counts.items()):
        print(f"{topic}: {count}", file=out)
    letters = found["dead_letters"]
    assert isinstance(letters, list)
    for letter in letters:
        where = "/".join(str(letter[key]) for key in ("job_id", "doc_id", "page") if letter.get(key) is not None)
        replayed = f" replayed {letter['replays']}x" if letter.get("replays") else ""
        print(
            f"{letter['id']}  {letter['at']}  {letter['topic']}  {where}{replayed}  {letter['cause'][:120]}", file=out
        )


async def dlq_command(request: DeadLetterRequest, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Exit code: 0 done, 2 when the request could not be made (refused, not found, unreachable)."""
    base = f"{request.url.rstrip('/')}/api/admin/dead-letters"
    letter = f"{base}/{request.letter_id}"
    try:
        if not request.token:
            raise GatewayError("no token: set BULKOCR_TOKEN to an administrator's token")
        headers = {"Authorization": f"Bearer {request.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=_TIMEOUT) as session:
            if request.action == "list":
                query = {"limit": str(request.limit), **({"topic": request.topic} if request.topic else {})}
                async with session.get(base, params=query) as response:
                    found = await answer_json(response, expect=200)
                if request.as_json:
                    print(json.dumps(found, indent=2), file=out)
                else:
                    _table(found, out)
            elif request.action == "show":
                async with session.get(letter) as response:
                    print(json.dumps(await answer_json(response, expect=200), indent=2), file=out)
            elif request.action == "replay":
                async with session.post(f"{letter}/replay") as response:
                    replayed = await answer_json(response, expect=202)
                print(json.dumps(replayed) if request.as_json else f"replayed: {replayed['how']}", file=out)
            else:
                async with session.delete(letter) as response:
                    if response.status != 204:
                        await answer_json(response, expect=204)
                print(f"dropped {request.letter_id}", file=out)
    except (GatewayError, aiohttp.ClientError, TimeoutError) as error:
        return could_not(error, request.url, err)
    return 0
