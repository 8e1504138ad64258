"""Settings come from BULKOCR_* variables and Docker secret files, the environment winning."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bulkocr.settings import MongoSettings, NsqSettings, load


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch):
    """Variables with the concern's prefix set the fields; lists are comma-separated."""
    monkeypatch.setenv("BULKOCR_NSQ_NSQD_TCP_ADDRESSES", "nsqd1:4150, nsqd2:4150")
    monkeypatch.setenv("BULKOCR_NSQ_LOOKUPD_HTTP_ADDRESSES", "")
    monkeypatch.setenv("BULKOCR_NSQ_MAX_ATTEMPTS", "3")
    settings = load(NsqSettings)
    assert settings.nsqd_tcp_addresses == ["nsqd1:4150", "nsqd2:4150"]
    assert settings.lookupd_http_addresses == []
    assert settings.max_attempts == 3


def test_secret_files_fill_settings_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A file named like the variable under the secrets folder is read; an env variable overrides it."""
    (tmp_path / "bulkocr_mongo_url").write_text("mongodb://secret-host:27017\n")
    (tmp_path / "bulkocr_mongo_database").write_text("from-file")
    monkeypatch.setenv("BULKOCR_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("BULKOCR_MONGO_DATABASE", "from-env")
    settings = load(MongoSettings)
    assert settings.url == "mongodb://secret-host:27017"
    assert settings.database == "from-env"


def test_the_mongo_url_and_its_password_stay_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """The URL from the secret carries the password: it is used, but a logged or printed
    settings object does not show it."""
    (tmp_path / "bulkocr_mongo_url").write_text("mongodb://bulkocr:s3cret-pw@mongo:27017/?authSource=admin\n")
    monkeypatch.setenv("BULKOCR_SECRETS_DIR", str(tmp_path))
    settings = load(MongoSettings)
    assert settings.url == "mongodb://bulkocr:s3cret-pw@mongo:27017/?authSource=admin"
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings)


def test_missing_secrets_folder_is_fine(monkeypatch: pytest.MonkeyPatch):
    """Outside Docker there is no /run/secrets; defaults apply without a warning."""
    monkeypatch.setenv("BULKOCR_SECRETS_DIR", "/definitely/not/here")
    assert load(MongoSettings).database == "bulkocr"


def test_invalid_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch):
    """A bad value stops the service at start with a message naming the setting."""
    monkeypatch.setenv("BULKOCR_NSQ_MAX_ATTEMPTS", "zero")
    with pytest.raises(ValidationError, match="max_attempts"):
        load(NsqSettings)
