"""The renderers: every archive format made from one OCR pass, from the page model alone.

A document is an iterable of `OcrPage` (a page's `PageText`, and its image where the format
needs one). Each format's `write(pages, out)` writes the whole document to a binary stream;
`FORMATS` maps a format's name to its media type, file extension and writer, and `render`
returns a document's bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO

from bulkocr.formats import EXTENSIONS
from bulkocr.renderers import alto, hocr, json_model, miniocr, text
from bulkocr.renderers.document import EmptyDocumentError, OcrPage

__all__ = ["FORMATS", "EmptyDocumentError", "OcrPage", "OutputFormat", "render"]

Writer = Callable[[Iterable[OcrPage], BinaryIO], None]


@dataclass(frozen=True)
class OutputFormat:
    name: str
    media_type: str
    extension: str  # with its dot (bulkocr.formats.EXTENSIONS)
    write: Writer
    needs_images: bool = False


def _write_pdf(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    # Imported on first use: OCRmyPDF, fpdf2 and pikepdf take over a second to import, and
    # most users of this package (the gateway listing formats, the text formats) never need them.
    from bulkocr.renderers import pdf

    pdf.write(pages, out)


FORMATS: Mapping[str, OutputFormat] = MappingProxyType(
    {
        output.name: output
        for output in (
            OutputFormat("text", "text/plain; charset=utf-8", EXTENSIONS["text"], text.write),
            OutputFormat("json", "application/json", EXTENSIONS["json"], json_model.write),
            OutputFormat("hocr", "text/html; charset=utf-8", EXTENSIONS["hocr"], hocr.write),
            OutputFormat("alto", "application/xml", EXTENSIONS["alto"], alto.write),
            OutputFormat("miniocr", "application/xml", EXTENSIONS["miniocr"], miniocr.write),
            OutputFormat("pdf", "application/pdf", EXTENSIONS["pdf"], _write_pdf, needs_images=True),
        )
    }
)


def render(format_name: str, pages: Iterable[OcrPage]) -> bytes:
    """The whole document in the named format; raises KeyError for an unknown format."""
    buffer = io.BytesIO()
    FORMATS[format_name].write(pages, buffer)
    return buffer.getvalue()
