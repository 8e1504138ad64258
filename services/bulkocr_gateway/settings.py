"""The gateway's own settings (`BULKOCR_*`); NSQ, MongoDB, blobs and logging have their own classes."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bulkocr.contracts import EngineName
from bulkocr.settings import CommaList, split_commas

FORMATS = ("txt", "json", "hocr", "alto", "miniocr", "pdf")

# JobOptions accepts 50-1200 dpi; the gateway's range must sit inside it.
_DPI_FLOOR, _DPI_CEILING = 50, 1200


def parse_tokens(value: object) -> object:
    """`owner:token,owner:token` (from a variable or a secret file) into {owner: token}."""
    if not isinstance(value, str):
        return value
    tokens: dict[str, str] = {}
    for entry in value.replace("\n", ",").split(","):
        if not entry.strip():
            continue
        owner, _, token = entry.strip().partition(":")
        if not owner.strip() or not token.strip():
            raise ValueError("each API token must be written owner:token")
        tokens[owner.strip()] = token.strip()
    return tokens


class GatewaySettings(BaseSettings):
    # hide_input_in_errors: a start-up error names the setting and why, never its value.
    model_config = SettingsConfigDict(env_prefix="BULKOCR_", extra="ignore", hide_input_in_errors=True)

    # repr=False: settings may be logged, tokens must not be.
    api_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    engine: EngineName = "rapidocr"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_upload_bytes: int = Field(default=2 << 30, gt=0)
    # Doc ids are d0001..d9999, so they sort in upload order as strings.
    max_files_per_job: int = Field(default=5_000, gt=0, le=9_999)
    # A file name (its path, as sent) travels in messages and status rows: kept short enough
    # that neither grows without bound. Archive members' names are held to ingest's copy of it.
    max_filename_chars: int = Field(default=1024, gt=0)
    # Uploads an owner's jobs may keep at once (until retention removes them): one department's
    # backlog cannot fill the disk the others share.
    max_bytes_per_owner: int = Field(default=200 << 30, gt=0)
    default_dpi: int = 300
    min_dpi: int = Field(default=72, ge=_DPI_FLOOR, le=_DPI_CEILING)
    max_dpi: int = Field(default=600, ge=_DPI_FLOOR, le=_DPI_CEILING)
    upload_chunk_bytes: int = Field(default=256 * 1024, ge=4096)
    # A connection that has not sent a whole request's headers this long after it opened (or
    # after its last answer) is closed; an upload that sends nothing for body_idle_timeout_s
    # is answered 408. Slow clients cannot hold connections for ever.
    header_timeout_s: float = Field(default=15.0, gt=0)
    body_idle_timeout_s: float = Field(default=60.0, gt=0)
    # Where the uploader pushes to; empty means pushes are refused with 503.
    archipelago_url: str = ""
    # Owners (as in BULKOCR_API_TOKENS) who may read, replay and drop dead letters.
    admin_owners: CommaList = []

    _parse_tokens = field_validator("api_tokens", mode="before")(parse_tokens)
    _split_admins = field_validator("admin_owners", mode="before")(split_commas)

    @field_validator("api_tokens")
    @classmethod
    def _tokens_are_unique(cls, tokens: dict[str, str]) -> dict[str, str]:
        if len(set(tokens.values())) != len(tokens):
            raise ValueError("two owners share one API token")
        return tokens

    @model_validator(mode="after")
    def _dpi_range_holds_the_default(self) -> Self:
        if not self.min_dpi <= self.default_dpi <= self.max_dpi:
            raise ValueError(f"default_dpi {self.default_dpi} is outside {self.min_dpi}-{self.max_dpi}")
        return self

    def owners_by_token(self) -> dict[str, str]:
        return {token: owner for owner, token in self.api_tokens.items()}
