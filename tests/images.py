"""Generated images for tests that need a page far bigger decoded than as a file."""

from __future__ import annotations

import struct
import zlib


def blank_png(width: int, height: int) -> bytes:
    """A white RGB PNG written row by row, never held decoded: 8000 x 8000 (Pillow needs
    256 MB to decode it) is about 850 KB and takes under half a second to build."""
    row = b"\x00" + b"\xff" * (3 * width)  # filter type 0, then the row's pixels
    compressor = zlib.compressobj(1)  # the fastest level: 4x the size of level 9, a third of the time
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
