"""Fixtures for every tier: a clean environment and clean logging per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No BULKOCR_* setting leaks from the caller's shell into a test."""
    for name in list(os.environ):
        if name.startswith("BULKOCR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BULKOCR_SECRETS_DIR", "/nonexistent")
    yield
    structlog.reset_defaults()
