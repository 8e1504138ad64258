"""The page model itself as JSON: {"pages": [PageText, ...]}, one object per document.

It is the lossless format: every other one can be rendered again from it, and
`PageText.model_validate` reads each page back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from bulkocr.renderers.document import OcrPage, without_images


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document's pages as one JSON object, a page at a time."""
    texts = [page.text for page in without_images(pages)]
    out.write(b'{"pages":[')
    for index, page in enumerate(texts):
        if index:
            out.write(b",")
        out.write(page.model_dump_json().encode("utf-8"))
    out.write(b"]}")
