"""The page set OCR speed is measured on (bench/bench_ocr.py --speed): the real scans with a
transcription, as files a user would submit, plus two degraded copies of linn.png.

14 pages: linn.png, skew.pdf (about 2°), the four turns of cardinal.pdf, linn as CCITT G4
and as JBIG2, a noisy copy, a sideways noisy copy, a 150 dpi JPEG copy, typewriter.png,
francais.pdf and c02-22.pdf (no transcription: timed, not scored). Images carry their dpi,
so every system reads the same files the same size.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

from tests.ocr_quality import TEST_DATA, render_pdf_pages

NOISE_SHARE = 0.02
"""Share of pixels flipped to black or white in the noisy copies (speckle of a poor scan)."""


@dataclass(frozen=True)
class SpeedFile:
    name: str
    data: bytes
    truths: tuple[str | None, ...]
    """One per page: the text it should read as, or None where there is no transcription."""


def speed_files() -> list[SpeedFile]:
    linn = (TEST_DATA / "linn.txt").read_text(encoding="utf-8")
    with Image.open(TEST_DATA / "linn.png") as image:
        linn_page = image.convert("L")
    files = [SpeedFile("linn.png", _png(linn_page, 300), (linn,))]
    files += [
        SpeedFile(name, (TEST_DATA / name).read_bytes(), (linn,)) for name in ("skew.pdf", "ccitt.pdf", "jbig2.pdf")
    ]
    files.append(SpeedFile("cardinal.pdf", (TEST_DATA / "cardinal.pdf").read_bytes(), (linn,) * 4))
    noisy = _speckled(linn_page, seed=1)
    files.append(SpeedFile("linn-noisy.png", _png(noisy, 300), (linn,)))
    files.append(SpeedFile("linn-sideways-noisy.png", _png(noisy.rotate(90, expand=True), 300), (linn,)))
    half = linn_page.resize((linn_page.width // 2, linn_page.height // 2), Image.Resampling.LANCZOS)
    files.append(SpeedFile("linn-150dpi.jpg", _jpeg(half, 150), (linn,)))
    with Image.open(TEST_DATA / "typewriter.png") as image:
        typewriter = image.convert("L")
    files.append(SpeedFile("typewriter.png", _png(typewriter, 300), ((TEST_DATA / "typewriter.txt").read_text(),)))
    francais = (TEST_DATA / "francais.txt").read_text(encoding="utf-8")
    files.append(SpeedFile("francais.pdf", (TEST_DATA / "francais.pdf").read_bytes(), (francais,)))
    files.append(SpeedFile("c02-22.pdf", (TEST_DATA / "c02-22.pdf").read_bytes(), (None,)))
    return files


def page_images(file: SpeedFile, only: int | None = None) -> list[Image.Image]:
    """The file's pages (or only the one at index `only`) as the ingest service hands them to
    OCR: PDFs rendered at 300 dpi, images as they are."""
    if file.name.endswith(".pdf"):
        return render_pdf_pages(file.data, only=only)
    with Image.open(io.BytesIO(file.data)) as image:
        return [image.convert("L")]


def _speckled(page: Image.Image, *, seed: int) -> Image.Image:
    rng = random.Random(seed)
    noisy = page.copy()
    pixels = noisy.load()
    assert pixels is not None
    for _ in range(int(NOISE_SHARE * page.width * page.height)):
        pixels[rng.randrange(page.width), rng.randrange(page.height)] = rng.choice((0, 255))
    return noisy


def _png(image: Image.Image, dpi: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


def _jpeg(image: Image.Image, dpi: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75, dpi=(dpi, dpi))
    return buffer.getvalue()
