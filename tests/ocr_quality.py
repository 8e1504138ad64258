"""What OCR quality tests share: the real scans in tests/data, page rendering and the error rate."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
from PIL import Image
from rapidfuzz.distance import Levenshtein

TEST_DATA = Path(__file__).parent / "data"


def normalised(text: str) -> str:
    """Case folded, with every run of whitespace (line breaks, block gaps) made one space."""
    return " ".join(text.split()).casefold()


def character_error_rate(recognised: str, truth: str) -> float:
    """Levenshtein edits per character of the truth, after normalising case and whitespace."""
    expected = normalised(truth)
    return Levenshtein.distance(normalised(recognised), expected) / max(1, len(expected))


def render_pdf_pages(path: Path, dpi: int = 300) -> list[Image.Image]:
    """Every page of a PDF as a greyscale image, the way a scan is rasterised for OCR."""
    with pdfium.PdfDocument(path) as document:
        images: list[Image.Image] = []
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            images.append(bitmap.to_pil().copy())  # copy: the bitmap's buffer is freed on close
            bitmap.close()
            page.close()
        return images
