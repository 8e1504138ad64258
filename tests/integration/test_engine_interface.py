"""The engine interface: every engine a job may name is registered in the worker, and every
engine that can be built here keeps the interface's promises on real pages (the way
OCRmyPDF's interface test holds each OCR plugin to its spec). Adding an engine means
naming it in `contracts.EngineName` and registering it in `engines.ENGINES`; this test
then holds it to the same promises."""

from __future__ import annotations

import pytest
from PIL import Image

from bulkocr.contracts import ENGINE_NAMES
from bulkocr.page_model import Box, PageText
from bulkocr_ocr_worker.engines import ENGINES, EngineUnavailableError, NullEngine, OcrEngine, make_engine, read_page
from tests.ocr_quality import TEST_DATA

# paddle needs local model folders, which no package registry ships: it is held to saying so.
BUILDABLE_HERE = ("null", "rapidocr", "tesseract")


@pytest.fixture(scope="module", params=BUILDABLE_HERE)
def engine(request: pytest.FixtureRequest) -> OcrEngine:
    return make_engine(request.param)


def inside(box: Box, page: PageText) -> bool:
    return 0 <= box.x0 <= box.x1 <= page.width and 0 <= box.y0 <= box.y1 <= page.height


def test_every_engine_a_job_may_name_is_registered() -> None:
    assert set(ENGINES) == set(ENGINE_NAMES)
    assert set(BUILDABLE_HERE) <= set(ENGINES)


def test_an_engine_reads_a_page_into_a_model_of_that_page(engine: OcrEngine) -> None:
    """The page model has the image's size and the job's dpi, names its engine, and every
    block, line and word box lies on the page; an engine that reads text finds the title in
    the page's first line (Tesseract reads a speck above it as a line of its own)."""
    with Image.open(TEST_DATA / "typewriter.png") as image:
        image.load()
        page = read_page(engine, image, language=None, dpi=300)
    assert (page.width, page.height, page.dpi, page.rotation) == (image.width, image.height, 300, 0)
    assert page.engine
    for block in page.blocks:
        assert inside(block.box, page)
        for line in block.lines:
            assert inside(line.box, page)
            assert all(inside(word.box, page) for word in line.words)
    if page.engine != "null":
        assert "Linzensoep" in "\n".join(page.text.splitlines()[:2])


def test_an_engine_reads_a_blank_page_as_no_text(engine: OcrEngine) -> None:
    page = read_page(engine, Image.new("L", (1275, 1650), 255), language=None, dpi=150)
    assert (page.blocks, page.text, page.rotation) == ([], "", 0)


def test_an_engine_that_cannot_be_built_here_says_why(tmp_path) -> None:
    with pytest.raises(EngineUnavailableError, match="model directory"):
        make_engine("paddle", det_model_dir=tmp_path, rec_model_dir=tmp_path)


def test_an_engine_says_how_to_turn_a_page_upright(engine: OcrEngine) -> None:
    """`rotation` is a quarter turn, 0 for an upright page; an engine that reads text turns a
    page lying on its side back (one that reads nothing cannot tell, and says 0)."""
    with Image.open(TEST_DATA / "typewriter.png") as image:
        upright = image.convert("L")
    assert engine.rotation(upright) == 0
    sideways = upright.rotate(90, expand=True)  # a quarter turn counter-clockwise: 90 clockwise undoes it
    assert engine.rotation(sideways) == (0 if isinstance(engine, NullEngine) else 90)
