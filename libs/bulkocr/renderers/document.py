"""What every renderer takes: the pages of one document, each with its OCR and, optionally, its image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from bulkocr.page_model import PageText


class OcrPage(NamedTuple):
    """One page of a document: its OCR, and the upright page image its boxes refer to.

    `image` is the encoded image (PNG from the ingest splitter; anything Pillow reads will do).
    Only the searchable PDF needs it. `name` is the image's file name where a format records
    one (hOCR's `image` property); it defaults to page-0001.png, page-0002.png, ...
    """

    text: PageText
    image: bytes | None = None
    name: str | None = None


class EmptyDocumentError(ValueError):
    """A document has no pages: no format here can say anything useful about it."""


def numbered(pages: Iterable[OcrPage]) -> Iterator[tuple[int, OcrPage]]:
    """The pages numbered from 1, lazily; raises EmptyDocumentError if there are none."""
    count = 0
    for count, page in enumerate(pages, start=1):
        yield count, page
    if count == 0:
        raise EmptyDocumentError("a document needs at least one page")


def without_images(pages: Iterable[OcrPage]) -> list[OcrPage]:
    """The pages with their images dropped as they come: the text formats need no pixels, so a
    document held whole for them costs only its OCR."""
    return [page._replace(image=None) for _, page in numbered(pages)]


def image_name(number: int, page: OcrPage) -> str:
    """The page image's file name: the one given, or page-NNNN.png by page number."""
    return page.name if page.name is not None else f"page-{number:04d}.png"
