"""Minimal PDFs built by hand, byte by byte, for tests: no PDF writer library needed
(pypdfium2 cannot write encrypted files, and pikepdf is not a dependency of bulkocr)."""

from __future__ import annotations

import hashlib
import struct


def make_pdf(
    page_sizes: list[tuple[float, float]],
    *,
    content: bytes = b"",
    gray_image: tuple[int, int] | None = None,
    encrypt: tuple[bytes, bytes] | None = None,
) -> bytes:
    """A minimal, valid PDF: one page per size (points), each drawing ``content`` and, if
    given, a width x height 8-bit gray image; ``encrypt`` is (user, owner) passwords."""
    if encrypt is not None and (content or gray_image):
        raise ValueError("only empty pages can be encrypted here: streams are not encrypted")
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]  # pages filled in below
    image_ref = b""
    if gray_image is not None:
        width, height = gray_image
        pixels = bytes(range(256)) * (width * height // 256 + 1)
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
            b" /BitsPerComponent 8 /Length %d >>\nstream\n%s\nendstream"
            % (width, height, width * height, pixels[: width * height])
        )
        image_ref = b"/Resources << /XObject << /Im0 %d 0 R >> >>" % len(objects)
        content += b" q 144 0 0 144 0 0 cm /Im0 Do Q"
    kids = []
    for width_pt, height_pt in page_sizes:
        contents_ref = b""
        if content:
            objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
            contents_ref = b"/Contents %d 0 R" % len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] %s %s >>"
            % (width_pt, height_pt, contents_ref, image_ref)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    trailer = b""
    if encrypt is not None:
        file_id = hashlib.md5(b"bulkocr test", usedforsecurity=False).digest()
        objects.append(_standard_security_handler(*encrypt, file_id))
        trailer = b"/Encrypt %d 0 R /ID [<%s> <%s>]" % (len(objects), file_id.hex().encode(), file_id.hex().encode())
    return _serialize_pdf(objects, trailer)


def _serialize_pdf(objects: list[bytes], trailer: bytes) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref_at)
    return bytes(out)


# The padding string of PDF's standard security handler (ISO 32000-1, 7.6.3.3).
_PASSWORD_PAD = bytes.fromhex("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a")


def _standard_security_handler(user: bytes, owner: bytes, file_id: bytes) -> bytes:
    """An /Encrypt dictionary, revision 2 (40-bit RC4), for these passwords (ISO 32000-1,
    algorithms 2, 3 and 4). The test pages hold no strings or streams, so nothing else needs
    encrypting."""
    permissions = -44

    def padded(password: bytes) -> bytes:
        return (password + _PASSWORD_PAD)[:32]

    owner_entry = _rc4(hashlib.md5(padded(owner), usedforsecurity=False).digest()[:5], padded(user))
    key = hashlib.md5(
        padded(user) + owner_entry + struct.pack("<i", permissions) + file_id, usedforsecurity=False
    ).digest()[:5]
    user_entry = _rc4(key, _PASSWORD_PAD)
    return b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
        owner_entry.hex().encode(),
        user_entry.hex().encode(),
        permissions,
    )


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)
