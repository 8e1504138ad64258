"""Split one uploaded document into page images, one page at a time.

Pure and blocking: the ingest service calls these functions in its split processes. Nothing
here touches the network, the blob store or process-wide settings (Pillow's
``MAX_IMAGE_PIXELS`` and ``LOAD_TRUNCATED_IMAGES`` are left alone; sizes are checked here).

- :func:`detect_type` decides what a file is from its first bytes, never from its name.
- :func:`count_pages` opens a document and counts its pages without rendering any.
- :func:`iter_pages` yields one :class:`PageImage` (or :class:`PageFailure`) at a time, so
  memory stays flat however long the document is: a PDF is opened once and each page is
  loaded, rendered, encoded and closed before the next.
- :func:`expand_zip` streams a ZIP archive's members to a directory, as separate documents.

Decisions, and why:

- Pages are yielded as PNG bytes with their size and dpi, not as PIL images. The service
  stores each page in the blob store straight away, so encoding here (inside the split process)
  keeps CPU work off the event loop, and the raw raster is freed before the next page is
  rendered. PNG is lossless, so OCR sees exactly the pixels that were rendered or decoded;
  JPEG would add artefacts around glyph edges, which is where OCR is most sensitive.
- PDF pages are rendered in grayscale: OCR reads luminance, and an 8-bit page is a third
  of the size of an RGB one in memory and much smaller as PNG. The searchable PDF of a
  PDF input should put its text layer on the original page (vectors and colour intact)
  rather than on this raster, so colour would only cost. Raster inputs (TIFF, JPEG, PNG,
  JPEG 2000, WebP) keep their colour: for them this image *is* the page, including in a
  searchable PDF built from it.
- Something wrong with the document as a whole (unsupported, corrupt, encrypted, too many
  pages) raises a :class:`DocumentError` (a ``PermanentError``: retrying cannot help) before
  any page is produced. Something wrong with one page (too many pixels even at the minimum
  dpi, undecodable data) is yielded as a :class:`PageFailure`, and the other pages still come.
- PDFium is not thread-safe, so every PDFium call here holds one module lock. The ingest
  service calls these functions in split processes of their own (``split_process.py``, which
  holds them to memory and time limits), one document per process; the lock keeps any
  caller that uses threads safe.
"""

from __future__ import annotations

import codecs
import io
import math
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, TypeAlias

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped]
from PIL import ExifTags, Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bulkocr.errors import PermanentError

MIB = 1 << 20
GIB = 1 << 30


class DocumentType(StrEnum):
    PDF = "pdf"
    TIFF = "tiff"
    JPEG = "jpeg"
    PNG = "png"
    JPEG2000 = "jpeg2000"
    WEBP = "webp"
    ZIP = "zip"


class SplitLimits(BaseModel):
    """Safety limits for splitting. Every document, page and archive is held to them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_page_pixels: int = Field(
        default=80_000_000,
        gt=0,
        description=(
            "Largest page image, in pixels. A PDF page that would be larger at the job's dpi"
            " is rendered at the highest dpi that fits; a raster image that is larger is"
            " refused before it is decoded. 80 MP holds A3 at 600 dpi or a 30 x 26 inch map"
            " at 300 dpi, and stays below Pillow's own 89.5 MP warning threshold, so Pillow"
            " never warns about a page accepted here. Memory for one page at the limit:"
            " about 540 MB to render a PDF page (PDFium's scaling buffers take some 5 bytes a"
            " pixel, measured), at most 320 MB for an RGB raster (Pillow's 4 bytes a pixel)."
        ),
    )
    max_pages: int = Field(default=5_000, gt=0, description="Most pages in one document.")
    min_dpi: int = Field(
        default=72,
        gt=0,
        description="Lowest dpi a PDF page may be downscaled to; below it, the page fails.",
    )
    max_dpi: int = Field(default=600, gt=0, description="Highest dpi a job may ask for.")
    max_page_image_bytes: int = Field(
        default=512 * MIB,
        gt=0,
        description=(
            "Largest total decoded size of the images drawn on one PDF page. PDFium decodes"
            " embedded images at full resolution whatever the render dpi, so the pixel limit"
            " alone does not bound memory (hugemono.pdf holds a 35000 x 35000 image)."
        ),
    )
    zip_max_total_bytes: int = Field(
        default=4 * GIB,
        gt=0,
        description="Most bytes extracted from one archive, nested archives included.",
    )
    zip_max_members: int = Field(
        default=10_000,
        gt=0,
        description="Most entries in one archive, nested archives included.",
    )
    zip_max_ratio: float = Field(
        default=100.0,
        gt=1.0,
        description="Largest uncompressed/compressed ratio of a member above the grace size.",
    )
    zip_ratio_grace_bytes: int = Field(
        default=64 * MIB,
        ge=0,
        description=(
            "Members are held to zip_max_ratio only once this many bytes have come out: a"
            " blank, uncompressed scan compresses about 1000:1 and is not a bomb."
        ),
    )
    zip_max_nesting: int = Field(
        default=1,
        ge=0,
        description="How many levels of ZIP inside the uploaded ZIP are expanded.",
    )

    @model_validator(mode="after")
    def _dpi_range_is_not_empty(self) -> SplitLimits:
        if self.min_dpi > self.max_dpi:
            raise ValueError(f"min_dpi {self.min_dpi} is above max_dpi {self.max_dpi}")
        return self


DEFAULT_LIMITS = SplitLimits()


class DocumentError(PermanentError):
    """This document (or one of its pages) cannot be read; retrying will not help."""


class UnsupportedDocument(DocumentError):
    """The content is not a type bulkocr splits (whatever its name says)."""


class CorruptDocument(DocumentError):
    """The document claims a supported type but its data is broken or truncated."""


class EncryptedDocument(DocumentError):
    """The document (or an archive member) needs a password."""


class TooManyPages(DocumentError):
    """The document has more pages than SplitLimits.max_pages."""


class TooManyPixels(DocumentError):
    """A page or image is too large to decode safely, even downscaled to the minimum dpi."""


class UnsafeArchive(DocumentError):
    """A ZIP archive that looks built to attack the extractor."""


class ZipSlip(UnsafeArchive):
    """A member name would escape the extraction directory."""


class ZipBomb(UnsafeArchive):
    """The archive expands to more bytes or members than allowed, or too fast."""


class NestingTooDeep(UnsafeArchive):
    """ZIP inside ZIP deeper than SplitLimits.zip_max_nesting."""


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page, encoded as PNG. ``mode`` is Pillow's: "1" (bilevel), "L" (gray) or "RGB"."""

    number: int
    png: bytes = field(repr=False)
    width: int
    height: int
    dpi: int
    mode: str


@dataclass(frozen=True, slots=True)
class PageFailure:
    """One page that cannot be produced, and why; the document's other pages still come."""

    number: int
    error: DocumentError


Page: TypeAlias = PageImage | PageFailure


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """A supported document extracted from an archive. ``name`` is its path in the archive."""

    name: str
    path: Path
    type: DocumentType


@dataclass(frozen=True, slots=True)
class SkippedMember:
    """An archive member that is not a supported document (a README, a .DS_Store, ...)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExpandedArchive:
    documents: tuple[ArchiveMember, ...]
    skipped: tuple[SkippedMember, ...]


# ---------------------------------------------------------------------------------------------
# Type detection

SUPPORTED_TYPES_TEXT = "PDF, TIFF, JPEG, PNG, JPEG 2000, WebP or ZIP"

# Acrobat accepts a PDF header anywhere in the first 1024 bytes, and so does PDFium.
_PDF_HEADER_WINDOW = 1024
_SNIFF_BYTES = 4096

_SIGNATURES: tuple[tuple[bytes, DocumentType], ...] = (
    (b"II*\x00", DocumentType.TIFF),
    (b"MM\x00*", DocumentType.TIFF),
    (b"II+\x00", DocumentType.TIFF),  # BigTIFF
    (b"MM\x00+", DocumentType.TIFF),
    (b"\xff\xd8\xff", DocumentType.JPEG),
    (b"\x89PNG\r\n\x1a\n", DocumentType.PNG),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", DocumentType.JPEG2000),  # JP2 signature box
    (b"\xff\x4f\xff\x51", DocumentType.JPEG2000),  # raw J2K codestream: SOC then SIZ
    (b"PK\x03\x04", DocumentType.ZIP),
    (b"PK\x05\x06", DocumentType.ZIP),  # an empty archive
)

# Only to say what an unsupported upload is; none of these is read.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"%!PS", "a PostScript file"),
    (b"AT&TFORM", "a DjVu document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (b"\x7fELF", "an executable"),
)


def detect_type(path: Path, *, name: str | None = None) -> DocumentType:
    """What ``path`` holds, judged by its first bytes. ``name`` (default: the file name) is
    only used in the error message; raises :class:`UnsupportedDocument`."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    found = _type_from_head(head)
    if found is None:
        shown = path.name if name is None else name
        raise UnsupportedDocument(
            f"unsupported document: {_describe(head)} named {shown!r}; bulkocr reads {SUPPORTED_TYPES_TEXT}"
        )
    return found


def _type_from_head(head: bytes) -> DocumentType | None:
    if b"%PDF-" in head[:_PDF_HEADER_WINDOW]:
        return DocumentType.PDF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DocumentType.WEBP
    for signature, document_type in _SIGNATURES:
        if head.startswith(signature):
            return document_type
    return None


def _describe(head: bytes) -> str:
    """A short human description of content that is not supported."""
    if not head:
        return "an empty file"
    for signature, description in _KNOWN_UNSUPPORTED:
        if head.startswith(signature):
            return description
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"avif":
            return "an AVIF image"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "a HEIF image"
        return "a video or other ISO media file"
    if _looks_like_text(head):
        return "a text file"
    return f"unrecognised binary data (starting {head[:8].hex(' ')})"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # Incremental, so a multi-byte character cut at the end of the sample is not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(char.isprintable() or char in "\t\n\r\f\v" for char in text.lstrip("\ufeff"))


# ---------------------------------------------------------------------------------------------
# Public splitting API


def count_pages(path: Path, *, name: str | None = None, limits: SplitLimits = DEFAULT_LIMITS) -> int:
    """Open the document at ``path`` and count its pages, rendering none.

    Raises :class:`DocumentError` when it cannot be read or has more than ``limits.max_pages``
    pages, and ``ValueError`` for a ZIP archive (expand it with :func:`expand_zip` first).
    """
    document_type = detect_type(path, name=name)
    if document_type is DocumentType.ZIP:
        raise ValueError("a ZIP archive has no pages: expand it with expand_zip() first")
    if document_type is DocumentType.PDF:
        with _PDFIUM_LOCK:
            pdf = _open_pdf(path)
            try:
                count = len(pdf)
            finally:
                pdf.close()
    else:
        with _open_image(path, document_type) as image:
            count = _count_frames(image, limits) if document_type is DocumentType.TIFF else 1
    _check_page_count(count, limits)
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
        yield from _pdf_pages(path, dpi, limits, first)
    else:
        yield from _raster_pages(path, document_type, dpi, limits, first)


def _check_page_count(count: int, limits: SplitLimits) -> None:
    if count > limits.max_pages:
        raise TooManyPages(f"too many pages: the document has {count}, the limit is {limits.max_pages}")


# ---------------------------------------------------------------------------------------------
# PDF (PDFium)

# PDFium keeps global state and must never be entered by two threads at once.
_PDFIUM_LOCK = threading.Lock()
_POINTS_PER_INCH = 72


def _open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open with PDFium (caller holds _PDFIUM_LOCK), turning its error codes into causes."""
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


def _pdf_pages(path: Path, dpi: int, limits: SplitLimits, first: int) -> Generator[Page, None, None]:
    with _PDFIUM_LOCK:
        pdf = _open_pdf(path)
    try:
        with _PDFIUM_LOCK:
            count = len(pdf)
        _check_page_count(count, limits)
        for number in range(first, count + 1):
            # The page's raster lives only inside _pdf_page: nothing big is held across yield.
            yield _pdf_page(pdf, number, dpi, limits)
    finally:
        with _PDFIUM_LOCK:
            pdf.close()


def _pdf_page(pdf: pdfium.PdfDocument, number: int, dpi: int, limits: SplitLimits) -> Page:
    try:
        with _PDFIUM_LOCK:
            image, used_dpi = _render_pdf_page(pdf, number, dpi, limits)
    except DocumentError as error:
        return PageFailure(number, error)
    # Outside the lock: Pillow releases the GIL while encoding, PDFium work can go on.
    return _encode_page(image, number, used_dpi)


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
        f" {height_pt / _POINTS_PER_INCH:.1f} inches, {_megapixels(smallest)} even at"
        f" {limits.min_dpi} dpi; the limit is {_megapixels(limits.max_page_pixels)}"
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


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f} megapixels"


# ---------------------------------------------------------------------------------------------
# Raster images (Pillow)

_PILLOW_FORMATS = {
    DocumentType.TIFF: "TIFF",
    DocumentType.JPEG: "JPEG",
    DocumentType.PNG: "PNG",
    DocumentType.JPEG2000: "JPEG2000",
    DocumentType.WEBP: "WEBP",
}
_TYPE_LABELS = {
    DocumentType.TIFF: "TIFF",
    DocumentType.JPEG: "JPEG",
    DocumentType.PNG: "PNG",
    DocumentType.JPEG2000: "JPEG 2000",
    DocumentType.WEBP: "WebP",
}
# A stated resolution outside this range is a placeholder (0, 1) or nonsense, not a scan's.
_PLAUSIBLE_DPI = (50.0, 10_000.0)
# Level 3 is as fast as level 1 on scans and ~5% smaller; level 6 is ~2x slower for ~10%.
_PNG_COMPRESS_LEVEL = 3
# Pillow's errors for bad data, besides OSError (see _is_data_error).
_PILLOW_DATA_ERRORS: tuple[type[Exception], ...] = (
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
)
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, *_PILLOW_DATA_ERRORS)


def _open_image(path: Path, document_type: DocumentType) -> Image.Image:
    """Open the header only (nothing is decoded); restricted to the type the bytes claim."""
    label = _TYPE_LABELS[document_type]
    try:
        return Image.open(path, formats=[_PILLOW_FORMATS[document_type]])
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"too many pixels: the {label} image is too large ({error})") from error
    except _READ_ERRORS as error:
        if not _is_data_error(error):
            raise
        raise CorruptDocument(f"corrupt {label}: {error}") from error


def _is_data_error(error: BaseException) -> bool:
    # Pillow reports bad data as a bare OSError without errno ("image file is truncated");
    # an OSError with an errno is the file system's and may go away on retry.
    if isinstance(error, OSError):
        return error.errno is None
    return isinstance(error, _PILLOW_DATA_ERRORS)


def _count_frames(image: Image.Image, limits: SplitLimits) -> int:
    """Count TIFF pages by walking the IFD chain; stop one past the limit (it may loop)."""
    count = 0
    try:
        while count <= limits.max_pages:
            image.seek(count)
            count += 1
    except EOFError:
        pass  # walked off the last page
    except _READ_ERRORS as error:
        if not _is_data_error(error):
            raise
        raise CorruptDocument(f"corrupt TIFF: page {count + 1} cannot be found ({error})") from error
    if count > limits.max_pages:
        raise TooManyPages(f"too many pages: the TIFF has more than {limits.max_pages}, the limit")
    image.seek(0)
    return count


def _raster_pages(
    path: Path, document_type: DocumentType, dpi: int, limits: SplitLimits, first: int
) -> Generator[Page, None, None]:
    if document_type is not DocumentType.TIFF:
        # Decoded in a function of its own, so its pixels are freed before the yield.
        if first == 1:
            yield _single_image_page(path, document_type, dpi, limits)
        return
    with _open_image(path, document_type) as tiff:
        count = _count_frames(tiff, limits)
        for number in range(first, count + 1):
            yield _raster_page(tiff, document_type, number, dpi, limits)


def _single_image_page(path: Path, document_type: DocumentType, dpi: int, limits: SplitLimits) -> Page:
    # Animated PNG and WebP, and MPO (JPEG pairs): only the first frame is the page.
    with _open_image(path, document_type) as image:
        return _raster_page(image, document_type, 1, dpi, limits)


def _raster_page(
    source: Image.Image,
    document_type: DocumentType,
    number: int,
    fallback_dpi: int,
    limits: SplitLimits,
) -> Page:
    label = _TYPE_LABELS[document_type]
    try:
        source.seek(number - 1)
        width, height = source.size
        if width * height > limits.max_page_pixels:
            raise TooManyPixels(
                f"too many pixels: page {number} is a {width} x {height} {label} image,"
                f" {_megapixels(width * height)}; the limit is"
                f" {_megapixels(limits.max_page_pixels)}"
            )
        source.load()  # raises on truncated data: LOAD_TRUNCATED_IMAGES stays False
        orientation = source.getexif().get(ExifTags.Base.Orientation, 1)
        image, used_dpi = _square_pixels(_ocr_mode(source), source.info.get("dpi"), fallback_dpi, number, limits)
        image = _upright(image, orientation)
    except Image.DecompressionBombError as error:
        return PageFailure(number, TooManyPixels(f"too many pixels: page {number}: {error}"))
    except _READ_ERRORS as error:
        if not _is_data_error(error):
            raise
        return PageFailure(number, CorruptDocument(f"corrupt {label}: page {number}: {error}"))
    except DocumentError as error:
        return PageFailure(number, error)
    return _encode_page(image, number, used_dpi)


def _square_pixels(
    image: Image.Image, stated_dpi: object, fallback_dpi: int, number: int, limits: SplitLimits
) -> tuple[Image.Image, int]:
    """The image with square pixels, and its dpi (the stated one, else ``fallback_dpi``).

    Fax TIFFs are often 204 x 98 dpi; read as square pixels their text is squashed to half
    height, so the coarser axis is stretched to the finer resolution.
    """
    if not (isinstance(stated_dpi, tuple) and len(stated_dpi) == 2):
        return image, fallback_dpi
    low, high = _PLAUSIBLE_DPI
    x_dpi, y_dpi = float(stated_dpi[0]), float(stated_dpi[1])
    if not (low <= x_dpi <= high and low <= y_dpi <= high):
        return image, fallback_dpi
    if math.isclose(x_dpi, y_dpi, rel_tol=0.01):
        return image, round(x_dpi)
    target = max(x_dpi, y_dpi)
    size = (round(image.width * target / x_dpi), round(image.height * target / y_dpi))
    if size[0] * size[1] > limits.max_page_pixels:
        raise TooManyPixels(
            f"too many pixels: page {number} at {x_dpi:g} x {y_dpi:g} dpi becomes"
            f" {size[0]} x {size[1]} with square pixels; the limit is"
            f" {_megapixels(limits.max_page_pixels)}"
        )
    return image.resize(size, Image.Resampling.LANCZOS), round(target)


# EXIF orientation (TIFF tag 274) -> the transpose that makes the image upright.
_UPRIGHTING = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(image: Image.Image, orientation: object) -> Image.Image:
    """Turn phone and camera photos the way their EXIF orientation says."""
    transpose = _UPRIGHTING.get(orientation) if isinstance(orientation, int) else None
    return image if transpose is None else image.transpose(transpose)


def _ocr_mode(image: Image.Image) -> Image.Image:
    """Bring any Pillow mode to "1", "L" or "RGB": what OCR engines and PNG both take."""
    mode = image.mode
    if mode in ("1", "L", "RGB"):
        return image
    if mode.startswith("I;16"):
        # convert("L") would clip every level above 255 to white; scale 16 bits to 8.
        return image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    if mode in ("I", "F"):
        return _stretched_to_gray(image)
    if mode == "P" and "transparency" not in image.info:
        return image.convert("L" if _palette_is_gray(image) else "RGB")
    if mode in ("LA", "La"):
        return _flattened(image.convert("LA"), "L")
    if mode in ("RGBA", "RGBa", "PA", "P"):
        return _flattened(image.convert("RGBA"), "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _stretched_to_gray(image: Image.Image) -> Image.Image:
    # 32-bit and float images have no fixed white level: map their range onto 0..255.
    low, high = image.getextrema()
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float))):
        raise TypeError(f"expected a one-band image, got {image.mode}")
    if high <= low:
        return Image.new("L", image.size, 255 if low > 0 else 0)
    scale = 255 / (high - low)
    return image.point(lambda value: value * scale - low * scale).convert("L")


def _palette_is_gray(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def _flattened(image: Image.Image, mode: str) -> Image.Image:
    """Composite onto white: transparent areas of a scan are paper, not black."""
    background = Image.new(mode, image.size, 255 if mode == "L" else (255, 255, 255))
    background.paste(image.convert(mode), mask=image.getchannel("A"))
    return background


def _encode_page(image: Image.Image, number: int, dpi: int) -> PageImage:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL, dpi=(dpi, dpi))
    return PageImage(
        number=number,
        png=buffer.getvalue(),
        width=image.width,
        height=image.height,
        dpi=dpi,
        mode=image.mode,
    )


# ---------------------------------------------------------------------------------------------
# ZIP archives

_ZIP_CHUNK = MIB
# Only these are read. zipfile decompresses bzip2 and LZMA input in unbounded steps (one
# 4 KiB read can become gigabytes in memory before a byte is counted); scanners and
# ordinary zip tools produce stored or deflated members anyway.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ZIP_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}
# A central directory entry is 46 bytes plus name and extra fields; real names are short.
_MAX_DIRECTORY_BYTES_PER_MEMBER = 512
_END_OF_DIRECTORY = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_OF_DIRECTORY = struct.Struct("<4sQ2H2L4Q")
# These values in the classic end record mean "look in the ZIP64 record instead".
_ZIP64_ENTRIES_MARK = 0xFFFF
_ZIP64_SIZE_MARK = 0xFFFFFFFF
_ENCRYPTED_FLAG = 0x1
_S_IFMT = 0o170000
_S_IFLNK = 0o120000


def expand_zip(path: Path, dest_dir: Path, *, limits: SplitLimits = DEFAULT_LIMITS) -> ExpandedArchive:
    """Extract the supported documents in a ZIP archive into ``dest_dir``, in name order.

    Members are written as ``member-00001``, ``member-00002``, ... (their names in the archive
    are in :class:`ArchiveMember`), so no member name ever becomes a path. A ZIP inside the
    archive is expanded in place of itself, up to ``limits.zip_max_nesting`` levels. Members
    that are not supported documents are listed in ``skipped``. Raises :class:`ZipSlip`,
    :class:`ZipBomb`, :class:`NestingTooDeep`, :class:`EncryptedDocument`,
    :class:`UnsupportedDocument` or :class:`CorruptDocument` for the whole archive; files
    already written stay in ``dest_dir``, which the caller owns and removes.
    """
    expansion = _ArchiveExpansion(dest_dir, limits)
    expansion.expand(path, prefix="", depth=0)
    return ExpandedArchive(tuple(expansion.documents), tuple(expansion.skipped))


class _ArchiveExpansion:
    """The state of one expand_zip() call: its budget is shared by the nested archives."""

    def __init__(self, dest_dir: Path, limits: SplitLimits) -> None:
        self.dest_dir = dest_dir
        self.limits = limits
        self.bytes_left = limits.zip_max_total_bytes
        self.members_left = limits.zip_max_members
        self.files_written = 0
        self.documents: list[ArchiveMember] = []
        self.skipped: list[SkippedMember] = []

    def expand(self, path: Path, *, prefix: str, depth: int) -> None:
        archive_size = path.stat().st_size
        self._check_directory_size(path)
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
            raise CorruptDocument(f"corrupt ZIP archive: {error}") from error
        with archive:
            entries = archive.infolist()
            _refuse_office_documents(entries)
            self._check_entries(entries, prefix, archive_size)
            files = sorted((entry for entry in entries if not entry.is_dir()), key=_natural_order)
            for entry in files:
                if (entry.external_attr >> 16) & _S_IFMT == _S_IFLNK:
                    self.skipped.append(SkippedMember(prefix + entry.filename, "a symbolic link"))
                    continue
                target = self._extract(archive, entry, prefix + entry.filename, archive_size)
                self._sort_out(target, prefix + entry.filename, depth)

    def _sort_out(self, target: Path, name: str, depth: int) -> None:
        """Keep an extracted member as a document, expand it as an archive, or skip it."""
        try:
            member_type = detect_type(target, name=name)
        except UnsupportedDocument as error:
            self.skipped.append(SkippedMember(name, str(error)))
            target.unlink()
            return
        if member_type is not DocumentType.ZIP:
            self.documents.append(ArchiveMember(name, target, member_type))
            return
        if depth >= self.limits.zip_max_nesting:
            raise NestingTooDeep(
                f"ZIP nested too deep: {name!r} is an archive at depth {depth + 1}; at most"
                f" {self.limits.zip_max_nesting} level(s) of ZIP inside ZIP are expanded"
            )
        try:
            self.expand(target, prefix=name + "/", depth=depth + 1)
        except UnsupportedDocument as error:
            # Checked before its first member is written, so nothing of it is kept.
            self.skipped.append(SkippedMember(name, str(error)))
        target.unlink()

    def _check_directory_size(self, path: Path) -> None:
        """Refuse a huge central directory before zipfile turns every entry into an object."""
        entries, directory_bytes = _declared_directory_size(path)
        if entries > self.members_left or directory_bytes > self.members_left * _MAX_DIRECTORY_BYTES_PER_MEMBER:
            raise ZipBomb(
                f"ZIP bomb: the archive lists {entries:,} entries in {directory_bytes:,} bytes;"
                f" at most {self.members_left:,} more entries may be extracted"
            )

    def _check_entries(self, entries: list[zipfile.ZipInfo], prefix: str, archive_size: int) -> None:
        """Refuse the archive on what its directory declares, before a byte is extracted."""
        if len(entries) > self.members_left:
            raise ZipBomb(f"ZIP bomb: {len(entries):,} entries, over the limit of {self.limits.zip_max_members:,}")
        self.members_left -= len(entries)
        declared_total = 0
        for entry in entries:
            name = prefix + entry.filename
            if _escapes_directory(entry.filename):
                raise ZipSlip(f"zip slip: member {name!r} would be written outside its folder")
            if entry.is_dir():
                continue
            if entry.flag_bits & _ENCRYPTED_FLAG:
                raise EncryptedDocument(f"encrypted ZIP: member {name!r} needs a password")
            if entry.compress_type not in _ZIP_METHODS:
                method = _ZIP_METHOD_NAMES.get(entry.compress_type, f"method {entry.compress_type}")
                raise UnsupportedDocument(
                    f"unsupported ZIP compression: member {name!r} is compressed with {method};"
                    " only stored and deflated members are read"
                )
            if self._ratio_exceeded(entry.file_size, entry.compress_size, archive_size):
                raise ZipBomb(
                    f"ZIP bomb: member {name!r} declares {entry.file_size:,} bytes from"
                    f" {entry.compress_size:,}, a ratio over {self.limits.zip_max_ratio:g}"
                )
            declared_total += entry.file_size
        if declared_total > self.bytes_left:
            raise ZipBomb(
                f"ZIP bomb: the members declare {declared_total:,} bytes uncompressed, over the"
                f" {self.bytes_left:,} bytes that may still be extracted"
            )

    def _extract(self, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str, archive_size: int) -> Path:
        """Stream one member to a new file, counting the bytes that really come out."""
        self.files_written += 1
        target = self.dest_dir / f"member-{self.files_written:05d}"
        produced = 0
        try:
            with archive.open(entry) as source, target.open("xb") as sink:
                while chunk := source.read(_ZIP_CHUNK):
                    produced += len(chunk)
                    if produced > self.bytes_left:
                        raise ZipBomb(
                            f"ZIP bomb: extracting {name!r} went past the limit of"
                            f" {self.limits.zip_max_total_bytes:,} bytes for the archive"
                        )
                    if self._ratio_exceeded(produced, entry.compress_size, archive_size):
                        raise ZipBomb(
                            f"ZIP bomb: member {name!r} expanded to over {produced:,} bytes"
                            f" from {entry.compress_size:,}, a ratio over"
                            f" {self.limits.zip_max_ratio:g}"
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:
            raise CorruptDocument(f"corrupt ZIP archive: member {name!r}: {error}") from error
        self.bytes_left -= produced
        return target

    def _ratio_exceeded(self, produced: int, compressed: int, archive_size: int) -> bool:
        # A member's compressed data cannot be larger than the archive: capping the declared
        # size stops a forged compress_size from hiding the ratio of a real bomb.
        denominator = max(1, min(compressed, archive_size))
        return produced > self.limits.zip_ratio_grace_bytes and produced > self.limits.zip_max_ratio * denominator


def _natural_order(entry: zipfile.ZipInfo) -> list[str | int]:
    # "page2.tif" before "page10.tif". re.split with a group alternates text and digits, so
    # the lists of two names always compare str with str and int with int.
    return [
        int(part) if index % 2 else part.casefold() for index, part in enumerate(re.split(r"(\d+)", entry.filename))
    ]


def _declared_directory_size(path: Path) -> tuple[int, int]:
    """(entries, bytes) of the central directory as the end record states them; (0, 0) if
    there is no readable end record (zipfile then reports the archive as corrupt)."""
    with path.open("rb") as file:
        size = file.seek(0, io.SEEK_END)
        file.seek(max(0, size - (_END_OF_DIRECTORY.size + 0xFFFF)))  # the comment is < 64 KiB
        tail = file.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) - end < _END_OF_DIRECTORY.size:
            return 0, 0
        fields = _END_OF_DIRECTORY.unpack_from(tail, end)
        entries, directory_bytes = int(fields[4]), int(fields[5])
        if entries == _ZIP64_ENTRIES_MARK or directory_bytes == _ZIP64_SIZE_MARK:
            return _zip64_directory_size(file, tail, end)
        return entries, directory_bytes


def _zip64_directory_size(file: IO[bytes], tail: bytes, end: int) -> tuple[int, int]:
    locator_at = end - _ZIP64_LOCATOR.size
    if locator_at < 0:
        return 0, 0
    signature, _, record_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
    if signature != b"PK\x06\x07":
        return 0, 0
    file.seek(record_offset)
    record = file.read(_ZIP64_END_OF_DIRECTORY.size)
    if len(record) < _ZIP64_END_OF_DIRECTORY.size or not record.startswith(b"PK\x06\x06"):
        return 0, 0
    fields = _ZIP64_END_OF_DIRECTORY.unpack(record)
    return int(fields[7]), int(fields[8])


def _escapes_directory(member_name: str) -> bool:
    normalized = member_name.replace("\\", "/")
    return (
        normalized.startswith("/")
        or re.match(r"[A-Za-z]:", normalized) is not None  # C:\... on Windows
        or "\x00" in normalized
        or ".." in normalized.split("/")
    )


def _refuse_office_documents(entries: Iterable[zipfile.ZipInfo]) -> None:
    """Word, Excel, OpenDocument and EPUB files are ZIPs too, but not scans to expand."""
    names = {entry.filename for entry in entries}
    if "[Content_Types].xml" in names:
        raise UnsupportedDocument(
            "unsupported document: an Office Open XML file (.docx, .xlsx or .pptx), not a"
            f" ZIP of scans; bulkocr reads {SUPPORTED_TYPES_TEXT}"
        )
    if "mimetype" in names and names & {"META-INF/manifest.xml", "META-INF/container.xml"}:
        raise UnsupportedDocument(
            "unsupported document: an OpenDocument or EPUB file, not a ZIP of scans;"
            f" bulkocr reads {SUPPORTED_TYPES_TEXT}"
        )
