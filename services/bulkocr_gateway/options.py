"""The job options a submission may set, read from its form fields and checked (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from bulkocr.callback_urls import url_problem
from bulkocr.contracts import ENGINE_NAMES, JobOptions
from bulkocr.languages import UnknownLanguage, canonical_languages
from bulkocr_gateway.settings import FORMATS, GatewaySettings

OPTION_FIELDS = frozenset({"language", "dpi", "engine", "formats", "auto_push", "callback_url"})
DEFAULT_FORMATS = ("txt", "json")

MAX_LANGUAGE_CHARS = 200
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class InvalidOptions(ValueError):
    """A form field holds a value the gateway does not accept; the message says why."""


def parse_options(fields: Mapping[str, str], settings: GatewaySettings) -> JobOptions:
    return JobOptions(
        language=checked_languages(fields.get("language")),
        dpi=_dpi(fields.get("dpi"), settings),
        engine=_engine(fields.get("engine"), settings),
        formats=_formats(fields.get("formats")),
        auto_push=_flag(fields.get("auto_push")),
        callback_url=_callback_url(fields.get("callback_url")),
    )


def checked_languages(raw: str | None) -> str | None:
    """ISO 639-3 codes, comma-separated (639-1 codes are turned into 639-3), for the job's
    `language` field and a file part's Content-Language: the worker reads each page with an
    engine for their scripts, so an unknown code is refused here, not at OCR."""
    value = (raw or "").strip()
    if len(value) > MAX_LANGUAGE_CHARS:
        raise InvalidOptions(f"language is longer than {MAX_LANGUAGE_CHARS} characters")
    try:
        return canonical_languages(value)
    except UnknownLanguage as unknown:
        raise InvalidOptions(str(unknown)) from None


def _dpi(raw: str | None, settings: GatewaySettings) -> int:
    if raw is None or not raw.strip():
        return settings.default_dpi
    try:
        dpi = int(raw.strip())
    except ValueError:
        raise InvalidOptions(f"dpi {raw!r} is not a whole number") from None
    if not settings.min_dpi <= dpi <= settings.max_dpi:
        raise InvalidOptions(f"dpi {dpi} is outside {settings.min_dpi}-{settings.max_dpi}")
    return dpi


def _engine(raw: str | None, settings: GatewaySettings) -> str:
    engine = (raw or "").strip() or settings.engine
    if engine not in ENGINE_NAMES:
        raise InvalidOptions(f"unknown engine {engine!r}: use one of {', '.join(ENGINE_NAMES)}")
    return engine


def _formats(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_FORMATS
    formats = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise InvalidOptions(f"unknown formats {unknown}: use some of {', '.join(FORMATS)}")
    return formats


def _flag(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidOptions(f"auto_push {raw!r} is not true or false")


def _callback_url(raw: str | None) -> str | None:
    """Where the job's webhooks go. Only its form is checked here: where it points is checked
    when a webhook is sent (a name may resolve elsewhere by then)."""
    value = (raw or "").strip()
    if value and (problem := url_problem(value)):
        raise InvalidOptions(problem)
    return value or None
