"""Settings read once from the environment (`BULKOCR_*`) and Docker secret files.

Each concern has its own class and prefix, so a service builds only what it uses.
A Docker secret is a file under `/run/secrets` named like the variable
(`bulkocr_mongo_url`, case-insensitive); the environment wins over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRETS_DIR = Path("/run/secrets")

S = TypeVar("S", bound=BaseSettings)


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A list read from one variable as "a,b,c" rather than JSON.
CommaList = Annotated[list[str], NoDecode]


class NsqSettings(BaseSettings):
    """Where nsqd and nsqlookupd are, and how consumers retry."""

    model_config = SettingsConfigDict(env_prefix="BULKOCR_NSQ_", extra="ignore")

    nsqd_tcp_addresses: CommaList = ["127.0.0.1:4150"]
    nsqd_http_address: str = "127.0.0.1:4151"
    # Consumers discover nsqd through nsqlookupd; empty means "connect to nsqd_tcp_addresses".
    lookupd_http_addresses: CommaList = ["127.0.0.1:4161"]
    lookupd_poll_interval_s: int = Field(default=10, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=65535)
    backoff_base_s: float = Field(default=5.0, ge=0)
    backoff_max_s: float = Field(default=300.0, ge=0)
    msg_timeout_s: float = Field(default=60.0, ge=1)
    publish_timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    drain_timeout_s: float = Field(default=30.0, ge=0)
    reconnect_interval_s: float = Field(default=2.0, gt=0)
    # nsqd holds a consumer's messages up to this long to send them together. Its default,
    # 250 ms, held every hop of a small job (a 300-file job took 19.8 s; 4.1 s at 25 ms).
    # nsqd refuses less than its --min-output-buffer-timeout (25 ms unless set lower).
    output_buffer_timeout_ms: int = Field(default=25, ge=1)
    dead_letter_suffix: str = ".dlq"
    # An nsqd on every node: a worker publishes to the one registered with nsqlookupd under
    # this hostname (the stack names each `nsqd-<node>`), found at start (`nsq.local_nsqd`).
    local_nsqd_hostname: str = ""

    _split_lists = field_validator("nsqd_tcp_addresses", "lookupd_http_addresses", mode="before")(split_commas)


class MongoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_MONGO_", extra="ignore", hide_input_in_errors=True)

    # repr=False: the URL carries the database password (on Swarm, the secret bulkocr_mongo_url).
    url: str = Field(default="mongodb://127.0.0.1:27017", repr=False)
    database: str = "bulkocr"
    timeout_s: float = Field(default=10.0, gt=0)


class BlobSettings(BaseSettings):
    """Where page images and large results live: GridFS (no shared volume needed) or a directory."""

    model_config = SettingsConfigDict(env_prefix="BULKOCR_BLOB_", extra="ignore")

    backend: Literal["gridfs", "directory"] = "gridfs"
    directory: Path = Path("blobs")
    gridfs_bucket: str = "blobs"
    chunk_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_LOG_", extra="ignore")

    level: Literal["debug", "info", "warning", "error"] = "info"
    # "auto": readable on a terminal, JSON otherwise (Swarm's log driver collects stdout).
    format: Literal["auto", "json", "console"] = "auto"


def secrets_dir() -> Path | None:
    """The Docker secrets folder, if this machine has one (`BULKOCR_SECRETS_DIR` overrides)."""
    path = Path(os.environ.get("BULKOCR_SECRETS_DIR", DEFAULT_SECRETS_DIR))
    return path if path.is_dir() else None


def load(cls: type[S]) -> S:
    """Build a settings class from the environment and, where present, Docker secret files."""
    return cls(_secrets_dir=secrets_dir())
