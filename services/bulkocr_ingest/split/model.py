"""What splitting deals in: document types, the limits every document is held to, the errors
it raises, and the pages and archive members it yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias

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
class ExtractedMember:
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
    documents: tuple[ExtractedMember, ...]
    skipped: tuple[SkippedMember, ...]


def check_page_count(count: int, limits: SplitLimits) -> None:
    if count > limits.max_pages:
        raise TooManyPages(f"too many pages: the document has {count}, the limit is {limits.max_pages}")


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f} megapixels"
