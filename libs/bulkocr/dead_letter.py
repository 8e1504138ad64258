"""The payload of every dead-letter topic (`<topic>.dlq`): a message a consumer gave up on."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from bulkocr.wire import Message, utcnow


class DeadLetter(Message):
    """A message given up on: where it came from, its body as received, and why.

    A letter that would not fit nsqd's message limit keeps only the first
    `DEAD_LETTER_BODY_CHARS` characters of the body (and `DEAD_LETTER_CAUSE_CHARS` of the
    cause) and says `truncated`; `body_bytes` is the size received, so an operator knows the
    letter is a summary, not something to replay."""

    topic: str
    channel: str
    body: str
    cause: str
    attempts: int = Field(ge=0)
    at: datetime = Field(default_factory=utcnow)
    body_bytes: int = Field(default=0, ge=0)
    truncated: bool = False

    @classmethod
    def of(cls, topic: str, channel: str, body: bytes, cause: str, attempts: int) -> DeadLetter:
        text = body.decode(errors="replace")
        letter = cls(topic=topic, channel=channel, body=text, cause=cause, attempts=attempts, body_bytes=len(body))
        if len(letter.model_dump_json().encode()) <= DEAD_LETTER_MAX_BYTES:
            return letter
        return letter.model_copy(
            update={
                "body": text[:DEAD_LETTER_BODY_CHARS],
                "cause": cause[:DEAD_LETTER_CAUSE_CHARS],
                "truncated": True,
            }
        )


# nsqd refuses a message over --max-msg-size (1 MiB by default). A cut letter fits even if
# JSON escapes every character as six (\u00xx): 6 x (64 Ki + 8 Ki) plus the fields.
DEAD_LETTER_MAX_BYTES = 1024 * 1024 - 4096
DEAD_LETTER_BODY_CHARS = 64 * 1024
DEAD_LETTER_CAUSE_CHARS = 8 * 1024
