"""The notifier's settings (`BULKOCR_WEBHOOK_*`; the secret may be the Docker secret
`bulkocr_webhook_secret`). NSQ, MongoDB and logging have their own classes."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr.callback_urls import url_problem
from bulkocr.settings import NsqSettings

# nsqd clamps a requeue's delay to --max-req-timeout (1 h by default).
_MAX_BACKOFF_S = 3600.0


class WebhookSettings(BaseSettings):
    # hide_input_in_errors: a start-up error names the setting and why, never its value.
    model_config = SettingsConfigDict(env_prefix="BULKOCR_WEBHOOK_", extra="ignore", hide_input_in_errors=True)

    # Every job's webhook, besides the job's own callback_url (an operator's receiver).
    url: str = ""
    # repr=False: settings may be logged, the secret must not be.
    secret: SecretStr = Field(default=SecretStr(""), repr=False)
    # Tries of one delivery, the first included; then it is given up, with the cause logged.
    attempts: int = Field(default=8, ge=1, le=100)
    # Wait before try n+1: base x 2^(n-1), capped (10 s, 20 s, 40 s ... 15 min).
    backoff_base_s: float = Field(default=10.0, ge=0, le=_MAX_BACKOFF_S)
    backoff_max_s: float = Field(default=900.0, ge=0, le=_MAX_BACKOFF_S)
    # The whole POST (connect, send, answer); a receiver slower than this is tried again later.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Callback URLs are user input: loopback, private, link-local, multicast and unspecified
    # addresses are refused unless this is true (tests, one-host setups).
    allow_private: bool = False
    # The gateway's address as receivers reach it, for the status URL in a job's webhook.
    public_url: str = ""
    max_in_flight: int = Field(default=4, gt=0)

    @field_validator("url")
    @classmethod
    def _is_a_webhook_url(cls, url: str) -> str:
        if url and (problem := url_problem(url, "BULKOCR_WEBHOOK_URL")):
            raise ValueError(problem)
        return url

    def retries(self, nsq: NsqSettings) -> NsqSettings:
        """The NSQ settings of the notifier's subscriptions: a failed delivery is requeued with
        this backoff, and a message is tried as often as a delivery may be."""
        return nsq.model_copy(
            update={
                "max_attempts": self.attempts,
                "backoff_base_s": self.backoff_base_s,
                "backoff_max_s": self.backoff_max_s,
            }
        )
