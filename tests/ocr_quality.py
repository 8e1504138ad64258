"""What OCR quality tests share: the real scans in tests/data, page rendering and the error rate."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
from PIL import Image
from rapidfuzz.distance import Levenshtein

from bulkocr.page_model import Box, PageText

TEST_DATA = Path(__file__).parent / "data"
FOUR_UP_SHEET = (5100, 6600)
"""A broadsheet at 300 dpi: four letter pages, 2 x 2."""


def normalised(text: str) -> str:
    """Case folded, with every run of whitespace (line breaks, block gaps) made one space."""
    return " ".join(text.split()).casefold()


def character_error_rate(recognised: str, truth: str) -> float:
    """Levenshtein edits per character of the truth, after normalising case and whitespace."""
    expected = normalised(truth)
    return Levenshtein.distance(normalised(recognised), expected) / max(1, len(expected))


def words_found(recognised: str, truth: str) -> float:
    """Share of the truth's words that were recognised, counted as a multiset (a word the truth
    holds three times must be read three times). Words are runs of letters and digits, case
    folded, so punctuation and hyphenation split words alike on both sides. A lone "0" is left
    out of the truth: linn.txt writes the page's bullets that way."""
    expected = _words(truth)
    del expected["0"]
    return (expected & _words(recognised)).total() / max(1, expected.total())


def _words(text: str) -> Counter[str]:
    return Counter(re.findall(r"[^\W_]+", text.casefold()))


def render_pdf_pages(pdf: Path | bytes, dpi: int = 300, only: int | None = None) -> list[Image.Image]:
    """Every page of a PDF (a file or its bytes), or only the one at index `only`, as a
    greyscale image, the way a scan is rasterised for OCR."""
    with pdfium.PdfDocument(pdf) as document:
        images: list[Image.Image] = []
        for index in range(len(document)) if only is None else (only,):
            page = document[index]
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            images.append(bitmap.to_pil().copy())  # copy: the bitmap's buffer is freed on close
            bitmap.close()
            page.close()
        return images


def four_up(page: Image.Image) -> Image.Image:
    """Four copies of the page, 2 x 2, on a white sheet the size of a broadsheet at 300 dpi."""
    width, height = FOUR_UP_SHEET
    sheet = Image.new("L", FOUR_UP_SHEET, 255)
    for row in range(2):
        for column in range(2):
            sheet.paste(page, (column * width // 2, row * height // 2))
    return sheet


def quarter_text(page: PageText, column: int, row: int) -> str:
    """The text of the lines whose middle lies in one quarter of the page, in reading order."""

    def inside(box: Box) -> bool:
        return _half(box.x0 + box.x1, page.width) == column and _half(box.y0 + box.y1, page.height) == row

    return "\n".join(line.text for block in page.blocks for line in block.lines if inside(line.box))


def _half(twice_centre: int, side: int) -> int:
    """0 for a centre in the first half of the side, 1 in the second."""
    return min(1, twice_centre // side)
