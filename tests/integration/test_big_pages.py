"""Acceptance for big pages: a newspaper-sized sheet of four linn.png pages (5,100 x 6,600 px, 2 x 2)
is read in tiles, and each quarter reads as well as linn.png does on its own.

Read in one pass the detector sees this sheet shrunk 5.2 times and about one word in ten is never
found (90 % per quarter); tiled, each quarter must find at least 98 % of linn.txt's words (linn.png
alone: 98.8 %).
"""

from __future__ import annotations

import pytest
from PIL import Image

from bulkocr_ocr_worker.engines import RapidOcrEngine, read_page
from bulkocr_ocr_worker.tiling import TilingSettings
from tests.ocr_quality import FOUR_UP_SHEET, TEST_DATA, character_error_rate, four_up, quarter_text, words_found

MIN_WORDS_FOUND = 0.98
MAX_CHARACTER_ERROR_RATE = 0.03  # as for linn.png alone (test_linn_accuracy.py)


@pytest.fixture(scope="module")
def linn() -> Image.Image:
    with Image.open(TEST_DATA / "linn.png") as image:
        return image.convert("L")


@pytest.mark.timeout(900)  # four dense pages: about half a minute on an idle core, several times that on a busy one
@pytest.mark.parametrize(
    "tiling",
    [
        pytest.param(TilingSettings(), id="default"),
        # 3 x 3 tiles whose seams run through linn's columns: most lines are joined from two pieces.
        pytest.param(TilingSettings(tile_side=2560), id="seams-through-columns"),
    ],
)
def test_a_four_up_newspaper_sheet_finds_linn_in_every_quarter(linn: Image.Image, tiling: TilingSettings) -> None:
    """Every quarter of the sheet yields at least 98 % of linn.txt's words, in linn's reading order
    (its two columns one after the other), and no block mixes lines of two pages."""
    truth = (TEST_DATA / "linn.txt").read_text(encoding="utf-8")

    page = read_page(RapidOcrEngine(tiling=tiling), four_up(linn), language="en", dpi=300)

    assert (page.width, page.height, page.rotation) == (*FOUR_UP_SHEET, 0)
    for row in range(2):
        for column in range(2):
            text = quarter_text(page, column, row)
            assert words_found(text, truth) >= MIN_WORDS_FOUND, (column, row)
            assert character_error_rate(text, truth) <= MAX_CHARACTER_ERROR_RATE, (column, row)
    for block in page.blocks:
        assert block.box.width <= FOUR_UP_SHEET[0] // 2
        assert block.box.height <= FOUR_UP_SHEET[1] // 2
