"""Raster documents (TIFF, JPEG, PNG, JPEG 2000, WebP) read with Pillow, page by page."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Generator
from pathlib import Path

from PIL import ExifTags, Image

from bulkocr_ingest.split.model import (
    CorruptDocument,
    DocumentError,
    DocumentType,
    Page,
    PageFailure,
    PageImage,
    SplitLimits,
    TooManyPages,
    TooManyPixels,
    megapixels,
)
from bulkocr_ingest.split.png import png_bytes

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
# Pillow's errors for bad data, besides OSError (see _is_data_error).
_PILLOW_DATA_ERRORS: tuple[type[Exception], ...] = (
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
)
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, *_PILLOW_DATA_ERRORS)


def open_image(path: Path, document_type: DocumentType) -> Image.Image:
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


def count_frames(image: Image.Image, limits: SplitLimits) -> int:
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


def raster_pages(
    path: Path, document_type: DocumentType, dpi: int, limits: SplitLimits, first: int
) -> Generator[Page, None, None]:
    if document_type is not DocumentType.TIFF:
        # Decoded in a function of its own, so its pixels are freed before the yield.
        if first == 1:
            yield _single_image_page(path, document_type, dpi, limits)
        return
    with open_image(path, document_type) as tiff:
        count = count_frames(tiff, limits)
        for number in range(first, count + 1):
            yield _raster_page(tiff, document_type, number, dpi, limits)


def _single_image_page(path: Path, document_type: DocumentType, dpi: int, limits: SplitLimits) -> Page:
    # Animated PNG and WebP, and MPO (JPEG pairs): only the first frame is the page.
    with open_image(path, document_type) as image:
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
                f" {megapixels(width * height)}; the limit is"
                f" {megapixels(limits.max_page_pixels)}"
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
    return encode_page(image, number, used_dpi)


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
            f" {megapixels(limits.max_page_pixels)}"
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


def encode_page(image: Image.Image, number: int, dpi: int) -> PageImage:
    return PageImage(
        number=number,
        png=png_bytes(image, dpi),
        width=image.width,
        height=image.height,
        dpi=dpi,
        mode=image.mode,
    )
