"""The wire format of every NSQ payload: a versioned, frozen pydantic model, and a topic that
encodes and decodes exactly its model (refusing anything else at the edge, never retried).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bulkocr.errors import PermanentError


def utcnow() -> datetime:
    return datetime.now(UTC)


VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)$")


def _version_text(value: object) -> object:
    """Messages from before versions had a minor part said `"v": 1`: that is 1.0."""
    return f"{value}.0" if isinstance(value, int) and not isinstance(value, bool) else value


MessageVersion = Annotated[str, BeforeValidator(_version_text), Field(pattern=VERSION_PATTERN.pattern)]
"""`major.minor`. A minor version only adds fields with defaults, so a consumer reads a newer
minor by ignoring what it does not know; a new major changes meaning, and a consumer of an
older major refuses it (docs/messages.md, "Versions")."""


def version_of(text: str) -> tuple[int, int]:
    match = VERSION_PATTERN.match(text)
    if match is None:
        raise ValueError(f"not a message version: {text!r}")
    return int(match[1]), int(match[2])


class Message(BaseModel):
    """Base of every NSQ payload: immutable, strict about unknown fields of its own version,
    versioned (a payload that adds a field sets its own `v` default one minor higher)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: MessageVersion = "1.0"

    @classmethod
    def version(cls) -> tuple[int, int]:
        default = cls.model_fields["v"].default
        return version_of(str(default))


M = TypeVar("M", bound=Message)


class DecodeError(PermanentError):
    """A message body is not a valid payload for its topic."""


@dataclass(frozen=True)
class Topic(Generic[M]):
    """An NSQ topic name together with the payload model of its messages."""

    name: str
    model: type[M]

    def encode(self, message: M) -> bytes:
        if not isinstance(message, self.model):
            raise TypeError(f"{self.name} carries {self.model.__name__}, not {type(message).__name__}")
        return message.model_dump_json().encode()

    def decode(self, body: bytes) -> M:
        """The payload, strictly validated; a newer minor version's unknown fields are dropped,
        a different major version is refused with the reason."""
        try:
            message = self.model.model_validate_json(body)
        except ValidationError as error:
            return self._decode_newer_minor(body, error)
        self._check_major(message.v)
        return message

    def _check_major(self, version: str) -> None:
        ours = self.model.version()
        theirs = version_of(version)
        if theirs[0] != ours[0]:
            raise DecodeError(
                f"{self.name} message version {version} has another major version than this consumer "
                f"reads ({ours[0]}.x): a consumer that reads it must replay it from the dead-letter topic"
            )

    def _decode_newer_minor(self, body: bytes, error: ValidationError) -> M:
        """Validate again without the fields a newer minor version added (each `extra_forbidden`
        location, at any depth); any other error stands."""
        invalid = DecodeError(f"not a valid {self.model.__name__} for {self.name}: {error}")
        try:
            data = json.loads(body)
        except ValueError:
            raise invalid from error
        version = data.get("v") if isinstance(data, dict) else None
        if not isinstance(version, str) or VERSION_PATTERN.match(version) is None:
            raise invalid from error
        self._check_major(version)
        trimmed = without_newer_fields(self.model, data, version, error)
        if trimmed is None:
            raise invalid from error
        try:
            return self.model.model_validate(trimmed)
        except ValidationError as again:
            raise DecodeError(f"not a valid {self.model.__name__} for {self.name}: {again}") from again


def without_newer_fields(model: type[Message], data: Any, version: str, error: ValidationError) -> Any | None:
    """`data` without the fields a newer minor version added (each `extra_forbidden` location,
    at any depth), or None when `version` is not newer or another error stands."""
    errors = error.errors()
    if version_of(version) <= model.version() or any(e["type"] != "extra_forbidden" for e in errors):
        return None
    trimmed = copy.deepcopy(data)
    for extra in errors:
        *path, name = extra["loc"]
        parent: Any = trimmed
        for step in path:
            parent = parent[step]
        del parent[name]
    return trimmed


def read_stored(model: type[M], data: Mapping[str, Any]) -> M:
    """A model stored in the database by a service of this or a newer minor version (job
    options written by an updated gateway, read by an ingest not yet updated): the same
    rules as a message, so a rolling update never strands a record."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        version = data.get("v")
        if isinstance(version, str) and VERSION_PATTERN.match(version):
            trimmed = without_newer_fields(model, data, version, error)
            if trimmed is not None:
                return model.model_validate(trimmed)
        raise
