"""The exception classes whose type decides what happens to a message.

A handler that raises `PermanentError` gets its message finished and kept on the
dead-letter topic with the cause: retrying cannot help (bad input, unknown format).
Any other exception means "try again later": the message is requeued with backoff
until its attempts run out. Either may be `Unfinished`: the handler did part of its message.
"""

from typing import Any


class BulkOcrError(Exception):
    """Base class of bulkocr's own errors."""


class PermanentError(BulkOcrError):
    """Retrying cannot help: finish the message and record the cause."""


class Unfinished(Exception):
    """Raised by a handler that did part of its message: `remaining` (a payload of the same
    topic) is the part left, which the retry and give-up reports speak of. nsqd still
    redelivers or dead-letters the whole message. Mixed with `PermanentError` or not."""

    def __init__(self, cause: str, remaining: Any) -> None:
        super().__init__(cause)
        self.remaining = remaining


class PublishError(BulkOcrError):
    """nsqd did not accept a message (no connection, refused, timed out)."""


class BlobNotFound(BulkOcrError, KeyError):
    """No blob is stored under the key."""

    def __str__(self) -> str:
        return f"no blob stored under {self.args[0]!r}"


class ServerStartError(BulkOcrError):
    """A local server (nsqd, nsqlookupd, nsqadmin, the database) did not start or answer."""
