"""The exception classes whose type decides what happens to a message.

A handler that raises `PermanentError` gets its message finished and kept on the
dead-letter topic with the cause: retrying cannot help (bad input, unknown format).
Any other exception means "try again later": the message is requeued with backoff
until its attempts run out.
"""


class BulkOcrError(Exception):
    """Base class of bulkocr's own errors."""


class PermanentError(BulkOcrError):
    """Retrying cannot help: finish the message and record the cause."""


class PublishError(BulkOcrError):
    """nsqd did not accept a message (no connection, refused, timed out)."""


class BlobNotFound(BulkOcrError, KeyError):
    """No blob is stored under the key."""

    def __str__(self) -> str:
        return f"no blob stored under {self.args[0]!r}"


class ServerStartError(BulkOcrError):
    """A local server (nsqd, nsqlookupd, nsqadmin, the database) did not start or answer."""
