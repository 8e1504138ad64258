"""The uploader's settings (`BULKOCR_ARCHIPELAGO_*`); NSQ, MongoDB and logging have their own classes."""

from __future__ import annotations

import aiohttp
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr_uploader.archipelago import RetryPolicy


class UploaderSettings(BaseSettings):
    """Where Archipelago is and how to talk to it (`BULKOCR_ARCHIPELAGO_*`; the password may
    be the Docker secret `bulkocr_archipelago_password`)."""

    model_config = SettingsConfigDict(env_prefix="BULKOCR_ARCHIPELAGO_", extra="ignore")

    url: str = ""
    # The address people use, for links, if the uploader reaches Archipelago another way.
    public_url: str = ""
    user: str = ""
    password: SecretStr = Field(default=SecretStr(""), repr=False)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=5.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    max_retry_after_s: float = Field(default=300.0, ge=0)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    # Above nginx's 120 s fastcgi_read_timeout, so a slow save answers 504 before this fires.
    read_timeout_s: float = Field(default=180.0, gt=0)
    # Documents pushed at once: each create is a heavy synchronous save in Archipelago.
    concurrency: int = Field(default=2, gt=0, le=16)
    max_in_flight: int = Field(default=2, gt=0)
    # Archipelago deletes unreferenced uploads after 6 h; older ones are uploaded again.
    file_max_age_s: float = Field(default=5 * 3600.0, gt=0)
    bundle: str = "digital_object"
    collection_bundle: str = "digital_object_collection"

    def links_base(self) -> str:
        return (self.public_url or self.url).rstrip("/")

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s)

    def timeout(self) -> aiohttp.ClientTimeout:
        # No total: a large upload may take long; a silent server may not.
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s)
