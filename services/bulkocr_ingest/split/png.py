"""Page images written as PNG the fast way: no row filter, deflate at level 1.

Pillow's PNG writer tries five filters on every row and keeps the best; on a 300 dpi page
that choice costs more than the compression itself (Pillow at level 3: 56-88 ms a page; this
writer: 23-38 ms, and 8-14 ms to decode against 16-32, in docs/benchmarks.md). A scan is
mostly flat paper and ink, which deflate packs about as small without a filter (linn.png:
368 KB against 297 KB; a skewed PDF page: 1,070 KB against 1,193 KB).

The layout is PNG's own (signature, IHDR, pHYs for the dpi, one IDAT, IEND); the image is
compressed a band of rows at a time, so a page never needs a second whole copy in memory.
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow's mode -> PNG bit depth and colour type. Pillow packs "1" rows MSB first, padded to
# a byte, with 1 for white: PNG's own layout for 1-bit grayscale.
_LAYOUT = {"1": (1, 0), "L": (8, 0), "RGB": (8, 2)}
_BAND_ROWS = 256
_NO_FILTER = b"\x00"
_METRES_PER_INCH = 0.0254


def png_bytes(image: Image.Image, dpi: int) -> bytes:
    """The image ("1", "L" or "RGB") as a PNG stating `dpi`."""
    depth, colour = _LAYOUT[image.mode]
    header = struct.pack(">IIBBBBB", image.width, image.height, depth, colour, 0, 0, 0)
    pixels_per_metre = round(dpi / _METRES_PER_INCH)
    compressor = zlib.compressobj(1)
    compressed = []
    for top in range(0, image.height, _BAND_ROWS):
        bottom = min(top + _BAND_ROWS, image.height)
        band = image.crop((0, top, image.width, bottom)).tobytes()
        stride = len(band) // (bottom - top)
        rows = b"".join(_NO_FILTER + band[start : start + stride] for start in range(0, len(band), stride))
        compressed.append(compressor.compress(rows))
    compressed.append(compressor.flush())
    return b"".join(
        (
            _SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"pHYs", struct.pack(">IIB", pixels_per_metre, pixels_per_metre, 1)),
            _chunk(b"IDAT", b"".join(compressed)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
