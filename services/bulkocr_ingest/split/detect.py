"""What a file is, from its first bytes, never from its name."""

from __future__ import annotations

import codecs
from pathlib import Path

from bulkocr_ingest.split.model import DocumentType, UnsupportedDocument

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
