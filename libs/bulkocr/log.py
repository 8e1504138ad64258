"""structlog set up once per process: JSON lines on stdout, stdlib loggers routed through it.

Context (job, document, page, node) is bound per message with
`structlog.contextvars.bound_contextvars(...)` and appears on every line logged inside,
including lines from pynsq, tornado, aiohttp and pymongo.
"""

from __future__ import annotations

import logging
import sys

import structlog

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
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
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
            structlog.processors.dict_tracebacks if not console else _keep,
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
