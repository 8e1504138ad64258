"""The ingest splitter: type detection, page counting, one-page-at-a-time rendering, ZIP expansion."""

from __future__ import annotations

import io
import os
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from bulkocr.errors import PermanentError
from bulkocr_ingest import split
from bulkocr_ingest.split import (
    CorruptDocument,
    DocumentType,
    EncryptedDocument,
    NestingTooDeep,
    PageFailure,
    PageImage,
    SplitLimits,
    TooManyPages,
    TooManyPixels,
    UnsupportedDocument,
    ZipBomb,
    ZipSlip,
    count_pages,
    detect_type,
    expand_zip,
    iter_pages,
)
from bulkocr_ingest.split.png import png_bytes
from tests.pdf_builder import make_pdf

DATA = Path(__file__).parent.parent / "data"
LETTER = (612.0, 792.0)  # 8.5 x 11 inches in PDF points
BLACK_SQUARE = b"0 g 72 72 144 144 re f"  # a 2-inch black square, 1 inch from the bottom left
MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Building test documents


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def sample_page(mode: str = "L", size: tuple[int, int] = (300, 200)) -> Image.Image:
    """A page-like image: white with a dark bar, so orientation and content can be checked."""
    white: float | tuple[int, ...] = 255 if mode in ("1", "L") else (255, 255, 255)
    image = Image.new(mode, size, white)
    dark: float | tuple[int, ...] = 0 if mode in ("1", "L") else (20, 40, 160)
    image.paste(dark, (10, 10, size[0] // 2, 30))
    return image


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def only_page(path: Path, *, dpi: int = 300, limits: SplitLimits = split.DEFAULT_LIMITS) -> PageImage:
    pages = list(iter_pages(path, dpi=dpi, limits=limits))
    assert len(pages) == 1
    assert isinstance(pages[0], PageImage), pages[0]
    return pages[0]


def decoded(page: PageImage) -> Image.Image:
    image = Image.open(io.BytesIO(page.png))
    image.load()
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; its pixel data is a stub."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """Sample this process's resident memory every few ms; yields a reader of the peak growth
    in bytes. (ru_maxrss cannot be used: an earlier test may already have set the peak.)"""
    page_size = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page_size

    baseline = resident()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, resident())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak - baseline
    finally:
        done.set()
        sampler.join()


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of every PDF page the splitter renders."""
    rendered: list[int] = []
    original = split.pdf._render_pdf_page

    def recording(pdf: object, number: int, dpi: int, limits: SplitLimits) -> tuple[Image.Image, int]:
        rendered.append(number)
        return original(pdf, number, dpi, limits)

    monkeypatch.setattr(split.pdf, "_render_pdf_page", recording)
    return rendered


# ---------------------------------------------------------------------------------------------
# Type detection


def _samples() -> dict[DocumentType, bytes]:
    page = sample_page("RGB")
    return {
        DocumentType.PDF: make_pdf([LETTER]),
        DocumentType.TIFF: encoded(page, "TIFF"),
        DocumentType.JPEG: encoded(page, "JPEG"),
        DocumentType.PNG: encoded(page, "PNG"),
        DocumentType.JPEG2000: encoded(page, "JPEG2000"),
        DocumentType.WEBP: encoded(page, "WEBP", lossless=True),
        DocumentType.ZIP: make_zip({"a.png": encoded(page, "PNG")}),
    }


@pytest.mark.parametrize(
    ("document_type", "misleading_name"),
    [
        (DocumentType.PDF, "scan.png"),
        (DocumentType.TIFF, "scan.jpg"),
        (DocumentType.JPEG, "scan.tif"),
        (DocumentType.PNG, "scan.pdf"),
        (DocumentType.JPEG2000, "scan.png"),
        (DocumentType.WEBP, "scan.jpeg"),
        (DocumentType.ZIP, "scan.pdf"),
    ],
)
def test_type_is_detected_from_content_not_name(tmp_path, document_type, misleading_name):
    """Every supported type is recognised by its bytes, whatever the file is called."""
    path = write(tmp_path / misleading_name, _samples()[document_type])
    assert detect_type(path) is document_type


def test_raw_jpeg2000_codestream_is_detected(tmp_path):
    """A bare J2K codestream (no JP2 boxes) is JPEG 2000 too, and splits into one page."""
    data = encoded(sample_page("L"), "JPEG2000", no_jp2=True)
    assert data.startswith(b"\xff\x4f\xff\x51")
    path = write(tmp_path / "scan.bin", data)
    assert detect_type(path) is DocumentType.JPEG2000
    assert (only_page(path).width, only_page(path).height) == (300, 200)


def test_png_named_pdf_splits_as_an_image(tmp_path):
    """A PNG called .pdf is split as the image it is, not handed to the PDF renderer."""
    path = write(tmp_path / "scan.pdf", encoded(sample_page("L"), "PNG"))
    assert count_pages(path) == 1
    assert only_page(path).width == 300


def test_pdf_named_png_splits_as_a_pdf(tmp_path):
    """A PDF called .png is rendered as a PDF, page by page."""
    path = write(tmp_path / "scan.png", make_pdf([LETTER, LETTER]))
    assert count_pages(path) == 2


@pytest.mark.parametrize(
    ("name", "data", "described_as"),
    [
        ("empty.pdf", b"", "an empty file named 'empty.pdf'"),
        ("notes.pdf", b"Minutes of the meeting\nAll present.\n", "a text file named 'notes.pdf'"),
        ("scan.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "a GIF image named 'scan.png'"),
        ("blob.tif", b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8, "unrecognised binary data"),
    ],
)
def test_unsupported_content_is_refused_naming_what_it_is(tmp_path, name, data, described_as):
    """Unsupported content raises UnsupportedDocument saying what was found and its name."""
    path = write(tmp_path / name, data)
    with pytest.raises(UnsupportedDocument, match=re.escape(described_as)):
        count_pages(path)
    with pytest.raises(UnsupportedDocument, match=re.escape(described_as)):
        next(iter_pages(path))


def test_error_message_uses_the_given_display_name(tmp_path):
    """The service stores uploads under ids; the user's file name goes in the message."""
    path = write(tmp_path / "blob-1234", b"plain text")
    with pytest.raises(UnsupportedDocument, match=re.escape("a text file named 'report.pdf'")):
        detect_type(path, name="report.pdf")


# ---------------------------------------------------------------------------------------------
# PDF


def test_pdf_pages_come_one_at_a_time_in_order(tmp_path, monkeypatch):
    """iter_pages renders a page only when it is asked for: after the first next(), one page."""
    path = write(tmp_path / "doc.pdf", make_pdf([LETTER, (300.0, 400.0), LETTER]))
    rendered = count_renders(monkeypatch)
    pages = iter_pages(path, dpi=72)
    first = next(pages)
    assert rendered == [1]
    rest = list(pages)
    assert rendered == [1, 2, 3]
    assert [page.number for page in [first, *rest]] == [1, 2, 3]
    assert isinstance(rest[0], PageImage)
    assert (rest[0].width, rest[0].height) == (300, 400)


def test_pdf_page_count(tmp_path):
    """count_pages reports a PDF's pages without rendering them."""
    assert count_pages(write(tmp_path / "doc.pdf", make_pdf([LETTER] * 7))) == 7
    assert count_pages(DATA / "multipage.pdf") == 6


@pytest.mark.parametrize("dpi", [100, 200, 300])
def test_pdf_is_rendered_at_the_requested_dpi(tmp_path, dpi):
    """A letter page is 8.5 x 11 inches times the dpi in pixels, and drawn where it should be."""
    page = only_page(write(tmp_path / "doc.pdf", make_pdf([LETTER], content=BLACK_SQUARE)), dpi=dpi)
    assert (page.width, page.height, page.dpi) == (round(8.5 * dpi), 11 * dpi, dpi)
    image = decoded(page)
    assert image.mode == page.mode == "L"
    assert image.info["dpi"] == pytest.approx((dpi, dpi), abs=0.01)
    inside_square = (2 * dpi, page.height - 2 * dpi)  # 2 inches from the left and the bottom
    assert image.getpixel(inside_square) == 0
    assert image.getpixel((page.width - 10, 10)) == 255


def test_memory_stays_flat_over_many_pages(tmp_path):
    """Memory does not grow with the number of pages: each page is freed before the next."""
    path = write(tmp_path / "long.pdf", make_pdf([LETTER] * 120, content=BLACK_SQUARE))
    page_size = os.sysconf("SC_PAGE_SIZE")
    resident: list[int] = []
    for page in iter_pages(path, dpi=150):
        assert isinstance(page, PageImage)
        with open("/proc/self/statm") as statm:
            resident.append(int(statm.read().split()[1]) * page_size)
    # Keeping every 1275 x 1650 gray raster would add 2 MiB a page, 200 MiB over these pages.
    assert max(resident[20:]) - resident[19] < 30 * MIB


def test_pdfs_split_in_parallel_threads_match_serial_splitting(tmp_path):
    """Splitting several PDFs at once from a thread pool (as the service's executor may)
    neither deadlocks on the PDFium lock nor changes a byte of any page. (A race inside
    PDFium without the lock is too rare to provoke in a unit test; the lock follows
    pypdfium2's documented rule: one PDFium call at a time per process.)"""
    paths = [
        write(tmp_path / f"doc{index}.pdf", make_pdf([LETTER, (300.0 + index, 400.0)] * 3, content=BLACK_SQUARE))
        for index in range(4)
    ]

    def split_all(path: Path) -> list[tuple[int, int, int, bytes]]:
        pages = [page for page in iter_pages(path, dpi=72) if isinstance(page, PageImage)]
        return [(page.number, page.width, page.height, page.png) for page in pages]

    serial = [split_all(path) for path in paths]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(split_all, paths)) == serial
    assert [len(pages) for pages in serial] == [6, 6, 6, 6]


def test_invalid_pdf_is_corrupt(tmp_path):
    """A PDF header followed by EOF (invalid.pdf) is a CorruptDocument, for counting and splitting."""
    with pytest.raises(CorruptDocument, match="corrupt PDF"):
        count_pages(DATA / "invalid.pdf")
    with pytest.raises(CorruptDocument, match="corrupt PDF"):
        next(iter_pages(DATA / "invalid.pdf"))


def test_truncated_pdf_is_corrupt(tmp_path):
    """A PDF cut in half (no cross-reference table, no trailer) is a CorruptDocument."""
    data = make_pdf([LETTER, LETTER], content=BLACK_SQUARE)
    path = write(tmp_path / "cut.pdf", data[: len(data) // 2])
    with pytest.raises(CorruptDocument, match="corrupt PDF"):
        next(iter_pages(path))


def test_encrypted_pdf_needs_a_password(tmp_path):
    """A PDF encrypted with a user password raises EncryptedDocument saying a password is needed."""
    path = write(tmp_path / "locked.pdf", make_pdf([LETTER], encrypt=(b"user-secret", b"owner-secret")))
    with pytest.raises(EncryptedDocument, match="password is required"):
        count_pages(path)
    with pytest.raises(EncryptedDocument, match="password is required"):
        next(iter_pages(path))


def test_pdf_over_the_page_limit_fails_before_rendering(tmp_path, monkeypatch):
    """A document with more pages than max_pages fails with TooManyPages; no page is rendered."""
    path = write(tmp_path / "long.pdf", make_pdf([LETTER] * 4))
    limits = SplitLimits(max_pages=3)
    rendered = count_renders(monkeypatch)
    with pytest.raises(TooManyPages, match="has 4, the limit is 3"):
        count_pages(path, limits=limits)
    with pytest.raises(TooManyPages):
        next(iter_pages(path, limits=limits))
    assert rendered == []


def test_thirty_inch_page_is_downscaled_under_the_pixel_limit():
    """multipage.pdf's 30 x 30 inch page (81 MP at 300 dpi) renders at the highest dpi under
    the default 80 MP limit, and says so; the pages around it keep 300 dpi."""
    pages = iter_pages(DATA / "multipage.pdf", dpi=300)
    first, second = next(pages), next(pages)
    pages.close()
    assert isinstance(first, PageImage)
    assert first.dpi == 300
    assert isinstance(second, PageImage)
    assert second.dpi == 298
    assert second.width == second.height == 30 * 298
    assert second.width * second.height <= SplitLimits().max_page_pixels


def test_page_too_large_even_at_minimum_dpi_fails_alone(tmp_path):
    """A page over the pixel limit even at min_dpi is a PageFailure; the other pages still come."""
    huge = (14_400.0, 14_400.0)  # 200 x 200 inches, PDF's largest page
    path = write(tmp_path / "poster.pdf", make_pdf([LETTER, huge, LETTER]))
    pages = list(iter_pages(path, dpi=150, limits=SplitLimits(max_page_pixels=4_000_000)))
    assert [type(page) for page in pages] == [PageImage, PageFailure, PageImage]
    failure = pages[1]
    assert isinstance(failure, PageFailure)
    assert failure.number == 2
    assert isinstance(failure.error, TooManyPixels)
    assert "even at 72 dpi" in str(failure.error)


def test_page_with_oversized_embedded_images_fails(tmp_path):
    """A page whose images would decode past max_page_image_bytes fails before PDFium decodes them."""
    path = write(tmp_path / "photo.pdf", make_pdf([LETTER], gray_image=(200, 200)))
    (page,) = iter_pages(path, dpi=72, limits=SplitLimits(max_page_image_bytes=10_000))
    assert isinstance(page, PageFailure)
    assert isinstance(page.error, TooManyPixels)
    assert "200 x 200" in str(page.error)
    assert isinstance(only_page(path, dpi=72), PageImage)  # within the default limit


def test_hugemono_is_downscaled_with_bounded_memory():
    """hugemono.pdf (a 116-inch page, 35000 x 35000 image) renders at a dpi under the pixel
    limit and peak memory stays bounded; a full 300-dpi render would need > 1.2 GB of output."""
    limits = SplitLimits()
    with peak_rss_growth() as growth:
        page = only_page(DATA / "hugemono.pdf", dpi=300, limits=limits)
        peak = growth()
    assert page.width * page.height <= limits.max_page_pixels
    assert limits.min_dpi <= page.dpi < 300
    # The image decodes to 153 MB (1 bit a pixel); the 79 MP render and PDFium's scaling
    # buffers add about 5 bytes a pixel. Measured: about 520 MB.
    assert peak < 900 * MIB, f"peak RSS growth {peak / MIB:.0f} MiB"


def test_hugemono_fails_clearly_under_tighter_limits():
    """With limits it cannot meet, hugemono.pdf's page fails with TooManyPixels, without decoding."""
    (by_pixels,) = iter_pages(DATA / "hugemono.pdf", limits=SplitLimits(max_page_pixels=50_000_000))
    assert isinstance(by_pixels, PageFailure)
    assert isinstance(by_pixels.error, TooManyPixels)
    assert "116.7 x 116.7 inches" in str(by_pixels.error)
    (by_image,) = iter_pages(DATA / "hugemono.pdf", limits=SplitLimits(max_page_image_bytes=100 * MIB))
    assert isinstance(by_image, PageFailure)
    assert "35000 x 35000" in str(by_image.error)


# ---------------------------------------------------------------------------------------------
# Raster images


def test_multipage_tiff_yields_each_frame_losslessly(tmp_path):
    """Each TIFF page becomes a page with its own size, mode and dpi, pixel for pixel."""
    frames = [sample_page("1", (850, 1100)), sample_page("L", (400, 300)), sample_page("RGB", (300, 200))]
    path = tmp_path / "scan.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_lzw", dpi=(300, 300))
    assert count_pages(path) == 3
    pages = list(iter_pages(path))
    assert [page.number for page in pages] == [1, 2, 3]
    for frame, page in zip(frames, pages, strict=True):
        assert isinstance(page, PageImage)
        assert (page.width, page.height, page.mode, page.dpi) == (*frame.size, frame.mode, 300)
        assert decoded(page).tobytes() == frame.tobytes()


def test_tiff_over_the_page_limit_fails(tmp_path):
    """A TIFF with more pages than max_pages fails with TooManyPages before any is decoded."""
    path = tmp_path / "scan.tif"
    frames = [sample_page("L")] * 3
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(TooManyPages, match="more than 2"):
        count_pages(path, limits=SplitLimits(max_pages=2))
    with pytest.raises(TooManyPages):
        next(iter_pages(path, limits=SplitLimits(max_pages=2)))


def test_fax_resolution_is_made_square(tmp_path):
    """A 204 x 98 dpi fax page is stretched to square 204 dpi pixels so text is not squashed."""
    path = tmp_path / "fax.tif"
    sample_page("1", (1728, 1100)).save(path, compression="group4", dpi=(204, 98))
    page = only_page(path)
    assert (page.width, page.height, page.dpi) == (1728, round(1100 * 204 / 98), 204)


@pytest.mark.parametrize(
    ("image_format", "options"),
    [("JPEG2000", {}), ("WEBP", {"lossless": True}), ("PNG", {}), ("JPEG", {"quality": 95})],
)
def test_single_images_are_one_page(tmp_path, image_format, options):
    """JPEG 2000, WebP, PNG and JPEG files are one page each, at the job's dpi when they state none."""
    path = write(tmp_path / "image", encoded(sample_page("RGB"), image_format, **options))
    assert count_pages(path) == 1
    page = only_page(path, dpi=200)
    assert (page.number, page.width, page.height, page.mode, page.dpi) == (1, 300, 200, "RGB", 200)


def test_stated_image_resolution_is_kept(tmp_path):
    """An image that states its dpi reports it, whatever dpi the job asked PDFs to render at."""
    path = write(tmp_path / "scan.png", encoded(sample_page("L"), "PNG", dpi=(400, 400)))
    assert only_page(path, dpi=300).dpi == 400


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) comes out upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = write(tmp_path / "photo.jpg", encoded(sample_page("RGB", (300, 200)), "JPEG", exif=exif))
    page = only_page(path)
    assert (page.width, page.height) == (200, 300)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_truncated_image_fails_instead_of_giving_half_a_page(tmp_path, image_format):
    """A truncated JPEG or PNG yields a PageFailure (CorruptDocument), never a partial page."""
    data = encoded(Image.effect_noise((400, 400), 60).convert("RGB"), image_format)
    path = write(tmp_path / "cut", data[: len(data) // 2])
    assert count_pages(path) == 1  # the header is intact
    (page,) = iter_pages(path)
    assert isinstance(page, PageFailure)
    assert isinstance(page.error, CorruptDocument)
    assert "truncated" in str(page.error)


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    """A raster page larger than max_page_pixels fails with TooManyPixels; it is not decoded."""
    path = write(tmp_path / "big.png", encoded(sample_page("L", (2000, 1000)), "PNG"))
    (page,) = iter_pages(path, limits=SplitLimits(max_page_pixels=1_000_000))
    assert isinstance(page, PageFailure)
    assert isinstance(page.error, TooManyPixels)
    assert "2000 x 1000" in str(page.error)


def test_decompression_bomb_image_is_refused(tmp_path):
    """A PNG claiming 20000 x 20000 pixels raises TooManyPixels without decoding (or warning)."""
    path = write(tmp_path / "bomb.png", png_header_only(20_000, 20_000))
    with pytest.raises(TooManyPixels):
        count_pages(path)
    with pytest.raises(TooManyPixels):
        next(iter_pages(path))


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    """16-bit gray scans keep their tones in 8 bits: mid-gray stays mid-gray, not white."""
    image = Image.new("I;16", (3, 1))
    for x, level in enumerate((0, 32_896, 65_535)):
        image.putpixel((x, 0), level)
    page = only_page(write(tmp_path / "deep.png", encoded(image, "PNG")))
    assert page.mode == "L"
    assert [decoded(page).getpixel((x, 0)) for x in range(3)] == [0, 128, 255]


def test_transparency_becomes_white_paper(tmp_path):
    """Transparent areas of an RGBA image become white, not black."""
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 0, 255))
    page = only_page(write(tmp_path / "cutout.png", encoded(image, "PNG")))
    assert page.mode == "RGB"
    assert decoded(page).getpixel((0, 0)) == (0, 0, 0)
    assert decoded(page).getpixel((3, 3)) == (255, 255, 255)


def test_gray_palette_becomes_grayscale(tmp_path):
    """A palette image whose colours are all grays is stored as 8-bit gray, a third of RGB."""
    image = sample_page("L").convert("P")
    assert only_page(write(tmp_path / "palette.png", encoded(image, "PNG"))).mode == "L"


# ---------------------------------------------------------------------------------------------
# ZIP archives


def test_zip_expands_supported_members_in_name_order(tmp_path):
    """Supported members are extracted (nested ZIP one level deep included) in natural name
    order with their archive names; other members are skipped with a reason."""
    png = encoded(sample_page("L"), "PNG")
    tiff = encoded(sample_page("1"), "TIFF")
    pdf = make_pdf([LETTER])
    inner = make_zip({"b.pdf": pdf, "a.tif": tiff})
    archive = write(
        tmp_path / "upload.zip",
        make_zip({"scan10.png": png, "scan2.png": png, "docs/": b"", "docs/readme.txt": b"hello", "inner.zip": inner}),
    )
    out = tmp_path / "out"
    out.mkdir()
    expanded = expand_zip(archive, out)
    assert [(member.name, member.type) for member in expanded.documents] == [
        ("inner.zip/a.tif", DocumentType.TIFF),
        ("inner.zip/b.pdf", DocumentType.PDF),
        ("scan2.png", DocumentType.PNG),
        ("scan10.png", DocumentType.PNG),
    ]
    assert [member.path.read_bytes() for member in expanded.documents] == [tiff, pdf, png, png]
    assert all(member.path.parent == out for member in expanded.documents)
    assert [(skip.name, "a text file" in skip.reason) for skip in expanded.skipped] == [("docs/readme.txt", True)]
    assert sorted(out.iterdir()) == sorted(member.path for member in expanded.documents)


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "docs/../../evil.png", "..\\evil.png", "C:/evil.png"])
def test_zip_slip_is_refused(tmp_path, name):
    """A member name that climbs out of the folder or is absolute refuses the whole archive."""
    archive = write(tmp_path / "slip.zip", make_zip({"fine.png": b"x", name: b"x"}))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ZipSlip, match="zip slip"):
        expand_zip(archive, out)
    assert list(out.iterdir()) == []


def test_zip_bomb_by_total_size_is_refused(tmp_path):
    """An archive that expands past zip_max_total_bytes is a ZipBomb."""
    archive = write(tmp_path / "bomb.zip", make_zip({"zeros.png": bytes(20 * MIB)}))
    with pytest.raises(ZipBomb, match="ZIP bomb"):
        expand_zip(archive, tmp_path, limits=SplitLimits(zip_max_total_bytes=10 * MIB))


def test_zip_bomb_by_ratio_is_refused(tmp_path):
    """A member that expands more than zip_max_ratio times past the grace size is a ZipBomb."""
    archive = write(tmp_path / "bomb.zip", make_zip({"zeros.png": bytes(8 * MIB)}))
    limits = SplitLimits(zip_ratio_grace_bytes=MIB)
    with pytest.raises(ZipBomb, match="ratio over 100"):
        expand_zip(archive, tmp_path, limits=limits)


def test_forged_member_sizes_do_not_hide_a_bomb(tmp_path):
    """Lying sizes in the central directory do not get a bomb through: a forged compressed
    size is capped by the archive's size, and a forged uncompressed size fails the CRC with
    no more than the declared bytes written."""
    data = bytearray(make_zip({"zeros.png": bytes(8 * MIB)}))
    entry = data.find(b"PK\x01\x02")  # central directory: compressed size at +20, size at +24
    big_compressed = bytearray(data)
    struct.pack_into("<L", big_compressed, entry + 20, 8 * MIB)
    limits = SplitLimits(zip_ratio_grace_bytes=MIB)
    with pytest.raises(ZipBomb):
        expand_zip(write(tmp_path / "a.zip", bytes(big_compressed)), tmp_path, limits=limits)
    small_size = bytearray(data)
    struct.pack_into("<L", small_size, entry + 24, 1000)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CorruptDocument, match="CRC"):
        expand_zip(write(tmp_path / "b.zip", bytes(small_size)), out)
    assert sum(path.stat().st_size for path in out.iterdir()) <= 1000


def test_zip_with_too_many_members_is_refused(tmp_path):
    """An archive listing more entries than zip_max_members is refused before extraction."""
    archive = write(tmp_path / "many.zip", make_zip({f"{index}.png": b"x" for index in range(20)}))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ZipBomb, match="20 entries"):
        expand_zip(archive, out, limits=SplitLimits(zip_max_members=10))
    assert list(out.iterdir()) == []


def test_zip_nested_beyond_one_level_is_refused(tmp_path):
    """A ZIP inside a ZIP inside the upload is refused (one level of nesting is expanded)."""
    innermost = make_zip({"page.png": encoded(sample_page("L"), "PNG")})
    archive = write(tmp_path / "deep.zip", make_zip({"middle.zip": make_zip({"inner.zip": innermost})}))
    with pytest.raises(NestingTooDeep):
        expand_zip(archive, tmp_path)


def test_zip_with_bzip2_members_is_refused(tmp_path):
    """bzip2 members are refused: zipfile inflates them in unbounded steps."""
    archive = write(tmp_path / "b.zip", make_zip({"a.png": b"x" * 100}, compression=zipfile.ZIP_BZIP2))
    with pytest.raises(UnsupportedDocument, match="bzip2"):
        expand_zip(archive, tmp_path)


def test_zip_with_encrypted_members_is_refused(tmp_path):
    """A password-protected member raises EncryptedDocument."""
    data = bytearray(make_zip({"secret.png": b"x"}))
    # zipfile cannot write ZipCrypto, so set the "encrypted" flag bit in both headers.
    data[data.find(b"PK\x03\x04") + 6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    with pytest.raises(EncryptedDocument, match="password"):
        expand_zip(write(tmp_path / "locked.zip", bytes(data)), tmp_path)


def test_office_document_is_not_expanded(tmp_path):
    """A .docx is a ZIP, but it is refused as an Office document rather than mined for images."""
    docx = make_zip({"[Content_Types].xml": b"<Types/>", "word/media/image1.png": encoded(sample_page("L"), "PNG")})
    with pytest.raises(UnsupportedDocument, match="Office Open XML"):
        expand_zip(write(tmp_path / "letter.docx", docx), tmp_path)


def test_zip_has_no_pages_of_its_own(tmp_path):
    """Counting or splitting a ZIP directly is a caller error: it must be expanded first."""
    archive = write(tmp_path / "a.zip", make_zip({"a.png": b"x"}))
    with pytest.raises(ValueError, match="expand_zip"):
        count_pages(archive)
    with pytest.raises(ValueError, match="expand_zip"):
        next(iter_pages(archive))


# ---------------------------------------------------------------------------------------------
# Limits and arguments


def test_limits_are_validated():
    """SplitLimits refuses an empty dpi range, non-positive limits and unknown fields."""
    with pytest.raises(ValueError, match="min_dpi"):
        SplitLimits(min_dpi=300, max_dpi=200)
    with pytest.raises(ValueError, match="max_pages"):
        SplitLimits(max_pages=0)
    with pytest.raises(ValueError, match="max_pixels"):
        SplitLimits(max_pixels=1)  # type: ignore[call-arg]


def test_document_errors_are_permanent():
    """Every "cannot read this document" error is a PermanentError: no retry can fix a file."""
    error_classes: list[type[Exception]] = [UnsupportedDocument, CorruptDocument, EncryptedDocument, TooManyPages]
    error_classes += [TooManyPixels, ZipSlip, ZipBomb, NestingTooDeep]
    assert all(issubclass(error_class, PermanentError) for error_class in error_classes)


def test_dpi_outside_the_limits_is_a_caller_error(tmp_path):
    """A dpi outside min_dpi..max_dpi raises ValueError at the call, before the file is read."""
    with pytest.raises(ValueError, match="dpi 1200"):
        iter_pages(tmp_path / "never-read.pdf", dpi=1200)


def test_corpus_files_are_copies_with_provenance():
    """Every file under tests/data that these tests read is listed in its README."""
    readme = (DATA / "README.md").read_text()
    for name in ("multipage.pdf", "hugemono.pdf", "invalid.pdf"):
        assert (DATA / name).is_file()
        assert f"| {name} |" in readme


@pytest.mark.parametrize(("mode", "size"), [("1", (1203, 517)), ("L", (640, 700)), ("RGB", (333, 258))])
def test_page_images_are_pngs_with_the_same_pixels_and_their_dpi(mode, size):
    """Every kind of page ingest hands on (bilevel with a width that is not a whole byte,
    grey, colour; taller than one band of rows) decodes to exactly its pixels and states its dpi."""
    noise = Image.effect_noise(size, 64).convert("L")
    source = (
        noise.convert(mode)
        if mode != "RGB"
        else Image.merge("RGB", (noise, noise.rotate(90), noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    )
    written = png_bytes(source, 240)
    with Image.open(io.BytesIO(written)) as back:
        back.load()
        assert back.format == "PNG"
        assert (back.mode, back.size) == (mode, size)
        assert back.tobytes() == source.tobytes()
        assert back.info["dpi"] == pytest.approx((240, 240), abs=0.01)
