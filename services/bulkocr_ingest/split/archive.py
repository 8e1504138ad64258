"""ZIP archives streamed to a folder, member by member, as documents of their own."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from bulkocr_ingest.split.detect import SUPPORTED_TYPES_TEXT, detect_type
from bulkocr_ingest.split.model import (
    DEFAULT_LIMITS,
    MIB,
    CorruptDocument,
    DocumentType,
    EncryptedDocument,
    ExpandedArchive,
    ExtractedMember,
    NestingTooDeep,
    SkippedMember,
    SplitLimits,
    UnsupportedDocument,
    ZipBomb,
    ZipSlip,
)

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
    are in :class:`ExtractedMember`), so no member name ever becomes a path. A ZIP inside the
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
        self.documents: list[ExtractedMember] = []
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
            self.documents.append(ExtractedMember(name, target, member_type))
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
