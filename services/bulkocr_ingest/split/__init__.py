"""Split one uploaded document into page images, one page at a time.

The package's modules: ``model`` (types, limits, errors, what is yielded), ``detect`` (what a
file is), ``pages`` (the API: count, then iterate), ``pdf`` (PDFium), ``raster`` (Pillow),
``archive`` (ZIP).

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

from bulkocr_ingest.split.archive import expand_zip
from bulkocr_ingest.split.detect import SUPPORTED_TYPES_TEXT, detect_type
from bulkocr_ingest.split.model import (
    DEFAULT_LIMITS,
    GIB,
    MIB,
    CorruptDocument,
    DocumentError,
    DocumentType,
    EncryptedDocument,
    ExpandedArchive,
    ExtractedMember,
    NestingTooDeep,
    Page,
    PageFailure,
    PageImage,
    SkippedMember,
    SplitLimits,
    TooManyPages,
    TooManyPixels,
    UnsafeArchive,
    UnsupportedDocument,
    ZipBomb,
    ZipSlip,
)
from bulkocr_ingest.split.pages import count_pages, iter_pages

__all__ = [
    "DEFAULT_LIMITS",
    "GIB",
    "MIB",
    "SUPPORTED_TYPES_TEXT",
    "CorruptDocument",
    "DocumentError",
    "DocumentType",
    "EncryptedDocument",
    "ExpandedArchive",
    "ExtractedMember",
    "NestingTooDeep",
    "Page",
    "PageFailure",
    "PageImage",
    "SkippedMember",
    "SplitLimits",
    "TooManyPages",
    "TooManyPixels",
    "UnsafeArchive",
    "UnsupportedDocument",
    "ZipBomb",
    "ZipSlip",
    "count_pages",
    "detect_type",
    "expand_zip",
    "iter_pages",
]
