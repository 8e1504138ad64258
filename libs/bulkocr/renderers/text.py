"""Plain text in reading order, UTF-8: lines separated by a newline, blocks by a blank line, and
pages by a form feed (the page break pdftotext uses, and `bulkocr.documents.join_pages`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from bulkocr.renderers.document import OcrPage, without_images
from bulkocr.renderers.words import clean_text


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document's text; an empty page is an empty string between its form feeds."""
    texts = [clean_text(page.text.text) for page in without_images(pages)]
    out.write("\f".join(texts).encode("utf-8"))
