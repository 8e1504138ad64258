"""structlog set up once per process: JSON lines on stdout, stdlib loggers routed through it.

Context (job, document, page, node) is bound per message with
`structlog.contextvars.bound_contextvars(...)` and appears on every line logged inside,
including lines from pynsq, tornado, aiohttp and pymongo.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from bulkocr.settings import LogSettings

# Libraries that log routine events (heartbeats, connections) at INFO.
_CHATTY_LOGGERS = ("nsq", "tornado.access", "tornado.general", "aiohttp.access", "pymongo")


def configure_logging(settings: LogSettings, *, service: str) -> None:
    """Route structlog and the standard library's logging to stdout, once, at service start."""
    level = getattr(logging, settings.level.upper())
    console = settings.format == "console" or (settings.format == "auto" and sys.stdout.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks without frame locals: a local may hold a caller's token.
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
            if not console
            else _keep,
            redact_secrets,  # last, so a rendered traceback is covered too
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def _keep(
    logger: structlog.types.WrappedLogger, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event


_SECRET_NAME = re.compile(r"token|password|passwd|secret|authorization|api_key|credential", re.IGNORECASE)
_SECRET_IN_TEXT = re.compile(r"(?i)(bearer|basic)\s+[^\s,;'\"]+")
REDACTED = "[redacted]"


def redact_secrets(
    logger: structlog.types.WrappedLogger, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Blank every field named like a secret, and any `Bearer …`/`Basic …` credential inside
    text, so no token or password reaches a log whatever a caller passes."""
    return {key: _redacted(key, value) for key, value in event.items()}


def _redacted(key: str, value: Any) -> Any:
    if _SECRET_NAME.search(key) and value not in (None, "", 0, False):
        return REDACTED
    if isinstance(value, str):
        return _SECRET_IN_TEXT.sub(lambda match: f"{match.group(1)} {REDACTED}", value)
    if isinstance(value, dict):
        return {k: _redacted(str(k), v) for k, v in value.items()}
    return value
