"""A document's stored OCR results read back: page by page, and as plain text.

The gateway serves these (its text and JSON routes) and the uploader pushes the same text
to Archipelago, so both read results through here rather than each its own way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from bulkocr.blobs import BlobStore
from bulkocr.errors import BlobNotFound
from bulkocr.page_model import PageText
from bulkocr.renderers.words import clean_text

log = structlog.get_logger(__name__)

Stored = Mapping[str, Any]


async def page_result(page: Stored | None, blobs: BlobStore) -> PageText | None:
    """A done page's OCR result, inline or from the blob store (large results live there)."""
    if page is None or page["status"] != "done":
        return None
    if page.get("result") is not None:
        return PageText.model_validate(page["result"])
    if page.get("result_blob"):
        try:
            return PageText.model_validate_json(await blobs.get(page["result_blob"]))
        except BlobNotFound:
            log.error("page_result_missing", job_id=page["job_id"], doc_id=page["doc_id"], page=page["page"])
    return None


def page_numbers(document: Stored, pages: Iterable[Stored]) -> list[int]:
    """Every page the document has so far: 1..its planned count, and any stored beyond it."""
    planned = document.get("pages") or 0
    highest = max((int(page["page"]) for page in pages), default=0)
    return list(range(1, max(planned, highest) + 1))


def join_pages(texts: Iterable[str]) -> str:
    """Pages joined by a form feed, the plain-text page break that pdftotext also uses."""
    return "\f".join(texts)


async def document_text(document: Stored, pages: Sequence[Stored], blobs: BlobStore) -> str:
    """The document's plain text, pages in order; a page without text (failed, not done) is empty.
    The same text as the `txt` output: cleaned of what XML and terminals cannot carry."""
    by_number = {int(page["page"]): page for page in pages}
    texts: list[str] = []
    for number in page_numbers(document, pages):
        result = await page_result(by_number.get(number), blobs)
        texts.append(clean_text(result.text) if result else "")
    return join_pages(texts)
