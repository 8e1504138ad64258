"""The autoscaler's settings (`BULKOCR_AUTOSCALER_*`): which service, how often, the policy's
defaults (labels on the service override min, max and target), and how to reach the Docker
Engine API."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bulkocr_autoscaler.decision import Policy

UNIX_SCHEME = "unix://"
TCP_SCHEMES = ("tcp://", "http://", "https://")


class AutoscalerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BULKOCR_AUTOSCALER_", extra="ignore")

    # In a stack the service is named <stack>_ocr-worker.
    service: str = "bulkocr_ocr-worker"
    interval_s: float = Field(default=15.0, gt=0)
    # Decide and log, change nothing.
    dry_run: bool = False

    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=8, ge=1)
    target_pages: int = Field(default=20, ge=1)
    scale_to_zero: bool = False
    hysteresis: float = Field(default=0.2, ge=0, lt=1)
    # Adding workers soon is cheap; removing them soon after adding wastes their start-up.
    up_cooldown_s: float = Field(default=30.0, ge=0)
    down_cooldown_s: float = Field(default=300.0, ge=0)

    # As DOCKER_HOST: unix:///path/to.sock, or tcp://host:port (a socket proxy, or the Engine with TLS).
    docker_host: str = f"{UNIX_SCHEME}/var/run/docker.sock"
    # Pinned: Docker 25 and later speak 1.44 (Docker 29 refuses anything older).
    docker_api_version: str = Field(default="1.44", pattern=r"^1\.[0-9]+$")
    # TLS for a tcp:// host, as DOCKER_CERT_PATH's ca.pem, cert.pem and key.pem.
    docker_tls_ca: Path | None = None
    docker_tls_cert: Path | None = None
    docker_tls_key: Path | None = None
    docker_timeout_s: float = Field(default=10.0, gt=0)
    # Tries of one scaling when another writer changes the service in between.
    update_attempts: int = Field(default=5, ge=1, le=20)

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalerSettings:
        if not self.docker_host.startswith((UNIX_SCHEME, *TCP_SCHEMES)):
            raise ValueError(f"docker_host {self.docker_host!r} is neither unix:// nor tcp://")
        if (self.docker_tls_cert is None) != (self.docker_tls_key is None):
            raise ValueError("docker_tls_cert and docker_tls_key go together")
        self.default_policy()  # refuses contradicting bounds at start, not at the first round
        return self

    @property
    def uses_tls(self) -> bool:
        configured = self.docker_tls_ca is not None or self.docker_tls_cert is not None
        return self.docker_host.startswith("https://") or configured

    def default_policy(self) -> Policy:
        return Policy(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target=self.target_pages,
            scale_to_zero=self.scale_to_zero,
            hysteresis=self.hysteresis,
            up_cooldown_s=self.up_cooldown_s,
            down_cooldown_s=self.down_cooldown_s,
        )
