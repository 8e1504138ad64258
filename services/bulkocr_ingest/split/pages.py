"""The splitting API for one document: count its pages, then yield them one at a time."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from bulkocr_ingest.split.detect import detect_type
from bulkocr_ingest.split.model import DEFAULT_LIMITS, DocumentType, Page, SplitLimits, check_page_count
from bulkocr_ingest.split.pdf import PDFIUM_LOCK, open_pdf, pdf_pages
from bulkocr_ingest.split.raster import count_frames, open_image, raster_pages


def count_pages(path: Path, *, name: str | None = None, limits: SplitLimits = DEFAULT_LIMITS) -> int:
    """Open the document at ``path`` and count its pages, rendering none.

    Raises :class:`DocumentError` when it cannot be read or has more than ``limits.max_pages``
    pages, and ``ValueError`` for a ZIP archive (expand it with :func:`expand_zip` first).
    """
    document_type = detect_type(path, name=name)
    if document_type is DocumentType.ZIP:
        raise ValueError("a ZIP archive has no pages: expand it with expand_zip() first")
    if document_type is DocumentType.PDF:
        with PDFIUM_LOCK:
            pdf = open_pdf(path)
            try:
                count = len(pdf)
            finally:
                pdf.close()
    else:
        with open_image(path, document_type) as image:
            count = count_frames(image, limits) if document_type is DocumentType.TIFF else 1
    check_page_count(count, limits)
    return count


def iter_pages(
    path: Path,
    *,
    dpi: int = 300,
    name: str | None = None,
    limits: SplitLimits = DEFAULT_LIMITS,
    first: int = 1,
) -> Generator[Page, None, None]:
    """Yield the document's pages in order, one at a time, numbered from 1 (starting at
    page ``first``: a split that was cut short resumes without rendering again).

    PDF pages are rendered at ``dpi`` (lower if the page would exceed the pixel limit; the
    page's ``dpi`` says what was used). Raster pages keep their own pixels and report the dpi
    stored in the file, or ``dpi`` when the file states none. Document-wide problems raise
    :class:`DocumentError` from the first ``next()``, before any page is rendered; a bad page
    is yielded as :class:`PageFailure`. Close the generator to release the file early.
    """
    # Checked now, not at the first next(): a bad argument is the caller's bug, not the file's.
    if not limits.min_dpi <= dpi <= limits.max_dpi:
        raise ValueError(f"dpi {dpi} is outside {limits.min_dpi}..{limits.max_dpi}")
    return _pages(path, dpi, name, limits, first)


def _pages(path: Path, dpi: int, name: str | None, limits: SplitLimits, first: int) -> Generator[Page, None, None]:
    document_type = detect_type(path, name=name)
    if document_type is DocumentType.ZIP:
        raise ValueError("a ZIP archive has no pages: expand it with expand_zip() first")
    if document_type is DocumentType.PDF:
        yield from pdf_pages(path, dpi, limits, first)
    else:
        yield from raster_pages(path, document_type, dpi, limits, first)
