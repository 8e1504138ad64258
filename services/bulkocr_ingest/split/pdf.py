"""PDF pages rendered with PDFium, at the job's dpi or the highest that fits the pixel limit."""

from __future__ import annotations

import math
import threading
from collections.abc import Generator
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped]
from PIL import Image

from bulkocr_ingest.split.model import (
    MIB,
    CorruptDocument,
    DocumentError,
    EncryptedDocument,
    Page,
    PageFailure,
    SplitLimits,
    TooManyPixels,
    check_page_count,
    megapixels,
)
from bulkocr_ingest.split.raster import encode_page

# PDFium keeps global state and must never be entered by two threads at once.
PDFIUM_LOCK = threading.Lock()
_POINTS_PER_INCH = 72


def open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open with PDFium (caller holds PDFIUM_LOCK), turning its error codes into causes."""
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        code = error.err_code
        if code == pdfium_raw.FPDF_ERR_PASSWORD:
            raise EncryptedDocument("encrypted PDF: a password is required to open it") from error
        if code == pdfium_raw.FPDF_ERR_SECURITY:
            raise EncryptedDocument("encrypted PDF: it uses a security handler PDFium does not support") from error
        if code == pdfium_raw.FPDF_ERR_FILE:
            raise  # the file system failed, not the document: worth a retry
        if code == pdfium_raw.FPDF_ERR_SUCCESS:
            # pypdfium2 refuses a document that opened but holds no page.
            raise CorruptDocument("corrupt PDF: it has no pages") from error
        cause = "its page tree is broken" if code == pdfium_raw.FPDF_ERR_PAGE else "its structure is unreadable"
        raise CorruptDocument(f"corrupt PDF: PDFium cannot open it, {cause}") from error


def pdf_pages(path: Path, dpi: int, limits: SplitLimits, first: int) -> Generator[Page, None, None]:
    with PDFIUM_LOCK:
        pdf = open_pdf(path)
    try:
        with PDFIUM_LOCK:
            count = len(pdf)
        check_page_count(count, limits)
        for number in range(first, count + 1):
            # The page's raster lives only inside _pdf_page: nothing big is held across yield.
            yield _pdf_page(pdf, number, dpi, limits)
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _pdf_page(pdf: pdfium.PdfDocument, number: int, dpi: int, limits: SplitLimits) -> Page:
    try:
        with PDFIUM_LOCK:
            image, used_dpi = _render_pdf_page(pdf, number, dpi, limits)
    except DocumentError as error:
        return PageFailure(number, error)
    # Outside the lock: Pillow releases the GIL while encoding, PDFium work can go on.
    return encode_page(image, number, used_dpi)


def _render_pdf_page(pdf: pdfium.PdfDocument, number: int, dpi: int, limits: SplitLimits) -> tuple[Image.Image, int]:
    try:
        page = pdf[number - 1]
    except pdfium.PdfiumError as error:
        raise CorruptDocument(f"corrupt PDF: page {number} cannot be loaded") from error
    try:
        width_pt, height_pt = page.get_size()
        used_dpi = _fit_dpi(number, width_pt, height_pt, dpi, limits)
        _check_page_images(page, number, limits)
        bitmap = page.render(
            scale=_render_scale(used_dpi),
            grayscale=True,
            draw_annots=True,  # stamps and notes are part of what a reader sees
        )
        try:
            # A Python-owned buffer that the PIL image shares, so it outlives the bitmap.
            image: Image.Image = bitmap.to_pil()
        finally:
            bitmap.close()
    except pdfium.PdfiumError as error:
        raise CorruptDocument(f"corrupt PDF: page {number} cannot be rendered ({error})") from error
    finally:
        page.close()
    return image, used_dpi


def _render_scale(dpi: int) -> float:
    # pypdfium2 sizes the bitmap as ceil(points * scale); without the nudge, floating-point
    # noise makes an 11-inch page 3301 pixels tall at 300 dpi instead of 3300.
    return dpi / _POINTS_PER_INCH * (1 - 1e-9)


def _rendered_pixels(width_pt: float, height_pt: float, dpi: int) -> int:
    scale = _render_scale(dpi)
    return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)


def _fit_dpi(number: int, width_pt: float, height_pt: float, dpi: int, limits: SplitLimits) -> int:
    """The highest dpi, at most ``dpi``, at which the page fits ``limits.max_page_pixels``."""
    if _rendered_pixels(width_pt, height_pt, limits.min_dpi) < 1:
        raise CorruptDocument(f"corrupt PDF: page {number} has no area")
    if _rendered_pixels(width_pt, height_pt, dpi) <= limits.max_page_pixels:
        return dpi
    area = width_pt * height_pt / _POINTS_PER_INCH**2
    fitted = min(dpi, math.floor(math.sqrt(limits.max_page_pixels / area)))
    # The estimate ignores rounding up to whole pixels; step down until it really fits.
    while fitted >= limits.min_dpi:
        if _rendered_pixels(width_pt, height_pt, fitted) <= limits.max_page_pixels:
            return fitted
        fitted -= 1
    smallest = _rendered_pixels(width_pt, height_pt, limits.min_dpi)
    raise TooManyPixels(
        f"too many pixels: page {number} is {width_pt / _POINTS_PER_INCH:.1f} x"
        f" {height_pt / _POINTS_PER_INCH:.1f} inches, {megapixels(smallest)} even at"
        f" {limits.min_dpi} dpi; the limit is {megapixels(limits.max_page_pixels)}"
    )


def _check_page_images(page: pdfium.PdfPage, number: int, limits: SplitLimits) -> None:
    """Refuse a page whose embedded images PDFium would decode into too much memory."""
    total_bytes = 0
    largest = (0, 0)
    for image_object in page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_IMAGE]):
        width, height = image_object.get_px_size()
        # 0 means PDFium could not tell: assume the widest (CMYK, 8 bits per channel).
        bits_per_pixel = image_object.get_metadata().bits_per_pixel or 32
        total_bytes += math.ceil(width * height * bits_per_pixel / 8)
        largest = max(largest, (width, height), key=lambda size: size[0] * size[1])
    if total_bytes > limits.max_page_image_bytes:
        raise TooManyPixels(
            f"too many pixels: page {number} draws images that decode to"
            f" {total_bytes / MIB:,.0f} MiB (the largest is {largest[0]} x {largest[1]} pixels);"
            f" the limit is {limits.max_page_image_bytes / MIB:,.0f} MiB"
        )
