"""Acceptance: every page of the linn family reads at no more than 3 % character errors through read_page.

linn.png has two columns, skew.pdf is the same page skewed by about 2°, and cardinal.pdf turns it
four ways; together they exercise orientation, recognition and reading order. The ground truth is
approximate (its bullets are "0", some dashes and quotes differ), which costs about 1 % on its own.
Each page takes a few seconds of real OCR on one core.
"""

from __future__ import annotations

import pytest
from PIL import Image

from bulkocr_ocr_worker.engines import RapidOcrEngine, read_page
from tests.ocr_quality import TEST_DATA, character_error_rate, render_pdf_pages

MAX_CHARACTER_ERROR_RATE = 0.03


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def rapidocr_engine(request: pytest.FixtureRequest) -> RapidOcrEngine:
    """Both runtimes, whichever `auto` takes on this machine: a cluster may mix CPUs."""
    return RapidOcrEngine(runtime=request.param)


@pytest.fixture(scope="module")
def linn_truth() -> str:
    return (TEST_DATA / "linn.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def linn_pages() -> dict[str, Image.Image]:
    with Image.open(TEST_DATA / "linn.png") as image:
        pages = {"linn.png": image.convert("L")}
    (pages["skew.pdf"],) = render_pdf_pages(TEST_DATA / "skew.pdf")
    for number, page in enumerate(render_pdf_pages(TEST_DATA / "cardinal.pdf"), start=1):
        pages[f"cardinal.pdf p{number}"] = page
    return pages


@pytest.mark.parametrize(
    ("page_name", "rotation"),
    [
        ("linn.png", 0),
        ("skew.pdf", 0),
        ("cardinal.pdf p1", 0),
        ("cardinal.pdf p2", 270),
        ("cardinal.pdf p3", 180),
        ("cardinal.pdf p4", 90),
    ],
)
def test_linn_pages_read_within_three_percent(
    rapidocr_engine: RapidOcrEngine, linn_pages: dict[str, Image.Image], linn_truth: str, page_name: str, rotation: int
) -> None:
    """The page is turned upright, its two columns are read one after the other, and the text matches
    linn.txt to within 3 % character errors (case and whitespace aside)."""
    page = read_page(rapidocr_engine, linn_pages[page_name], language="en", dpi=300)

    assert page.rotation == rotation
    assert character_error_rate(page.text, linn_truth) <= MAX_CHARACTER_ERROR_RATE
