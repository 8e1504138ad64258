"""The output formats a user may name, and the file extension of each: what the client, the
gateway and the renderers agree on, with no renderer (and none of their libraries) behind it."""

from __future__ import annotations

from bulkocr.errors import BulkOcrError

# Names users and jobs may use for formats, mapped to the renderers' names.
ALIASES = {
    "txt": "text",
    "text": "text",
    "json": "json",
    "hocr": "hocr",
    "alto": "alto",
    "miniocr": "miniocr",
    "pdf": "pdf",
}
# Several dots where the media type alone is ambiguous (.alto.xml); hOCR is .html, not .hocr:
# Archipelago types .hocr as octet-stream and reads hOCR only from text/html.
EXTENSIONS = {
    "text": ".txt",
    "json": ".json",
    "hocr": ".html",
    "alto": ".alto.xml",
    "miniocr": ".miniocr.xml",
    "pdf": ".pdf",
}


class OutputUnavailable(BulkOcrError):
    """The output cannot be made: unknown format, unknown document, or no page to render."""


def format_name(name: str) -> str:
    """The renderer's name for a format a user named (`txt` -> `text`)."""
    try:
        return ALIASES[name]
    except KeyError:
        raise OutputUnavailable(f"unknown format {name!r}; known: {', '.join(sorted(ALIASES))}") from None


def extension(name: str) -> str:
    return EXTENSIONS[format_name(name)]
