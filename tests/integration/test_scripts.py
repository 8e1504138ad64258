"""Pages in scripts beyond Latin and CJK, read through the worker's own path: the pool's
processes route each page (routing.py) and read it with `read_page`, as the service does.

The pages are generated (tests/script_pages.py): 11 pt DejaVu or Noto at 300 dpi, slightly
turned, blurred and grainy. Real scans of such print read worse; docs/benchmarks.md says how much.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import cast

import pytest
from PIL import Image, ImageDraw, ImageFont

from bulkocr.page_model import PageText
from bulkocr_ocr_worker.engines import EngineUnavailableError, make_engine, read_page
from bulkocr_ocr_worker.engines.tesseract import ScriptDetector, tessdata_dir
from bulkocr_ocr_worker.pool import OcrPool
from bulkocr_ocr_worker.routing import ScriptUnsupported
from tests.ocr_quality import character_error_rate
from tests.script_pages import ARABIC, DEJAVU, GREEK, RUSSIAN, SCRIPTS, Script, render, truth

MAX_CER = {"rus": 0.03, "ell": 0.03, "ara": 0.05}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pool() -> Iterator[OcrPool]:
    """One OCR process, as a worker has, asked for PP-OCRv6 as jobs are by default."""
    ocr = OcrPool(1, {}, preload="tesseract")
    yield ocr
    ocr.close()


async def read(pool: OcrPool, image: Image.Image, language: str | None) -> PageText:
    page_json, _ = await pool.read(png(image), engine="rapidocr", language=language, dpi=300)
    return PageText.model_validate_json(page_json)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.language)
async def test_a_job_that_names_its_language_has_its_pages_read_by_tesseract(pool: OcrPool, script: Script):
    """A job in Russian, Greek or Arabic asks for rapidocr (the default) and names its language:
    the page is read by Tesseract with that language's model, within the error rate allowed."""
    page = await read(pool, render(script), script.language)
    rate = character_error_rate(page.text, truth(script))
    assert page.engine.startswith("tesseract"), page.engine
    assert rate <= MAX_CER[script.language], (rate, page.text)
    words = [word for block in page.blocks for line in block.lines for word in line.words]
    assert len(words) >= 40
    assert all(0 < word.confidence <= 1 and word.box.width > 0 for word in words)


@pytest.mark.parametrize("script", [RUSSIAN, ARABIC], ids=lambda script: script.language)
async def test_a_job_without_a_language_has_the_script_of_each_page_detected(pool: OcrPool, script: Script):
    """No language named: Tesseract's OSD calls the page Cyrillic or Arabic, and it is read as
    Russian or Arabic rather than as PP-OCRv6's garbage."""
    page = await read(pool, render(script, seed=1), None)
    assert page.engine.startswith("tesseract"), page.engine
    assert character_error_rate(page.text, truth(script)) <= MAX_CER[script.language], page.text


async def test_a_turned_page_in_another_script_is_read_upright(pool: OcrPool):
    """A Greek page lying on its side is turned upright by OSD before Tesseract reads it."""
    page = await read(pool, render(GREEK).rotate(90, expand=True), "ell")
    assert page.rotation == 90
    assert character_error_rate(page.text, truth(GREEK)) <= MAX_CER["ell"], page.text


async def test_a_page_in_a_language_without_an_installed_model_fails_saying_what_is_missing(pool: OcrPool):
    """Ukrainian is known but its Tesseract model is not installed here: the page fails with the
    package to install, never with PP-OCRv6's reading of it."""
    with pytest.raises(ScriptUnsupported, match=r"rapidocr does not read Cyrillic \(ukr\).*tesseract-ocr-ukr"):
        await read(pool, render(RUSSIAN), "ukr")


def test_script_detection_tells_latin_cyrillic_greek_and_arabic_apart():
    detector = ScriptDetector()
    for script in SCRIPTS:
        found = detector.detect(render(script, seed=5))
        assert found is not None
        assert (found.script, found.rotation) == (script.name, 0)
    assert detector.detect(Image.new("L", (2480, 1200), 255)) is None


@pytest.mark.parametrize("mode", ["L", "RGB", "1"])
def test_script_detection_sees_the_page_tesseract_would_read_from_a_file(mode: str):
    """The detector hands Tesseract the raw pixels (no PNG written and decoded again): grey,
    colour and bilevel pages get the answer Tesseract gives for the same page as a PNG."""
    import tesserocr

    image = render(GREEK, seed=3).rotate(90, expand=True).convert(mode)
    osd_only = cast("tesserocr.PSM", tesserocr.PSM.OSD_ONLY)  # the stub types the members as `...`
    with tesserocr.PyTessBaseAPI(path=f"{tessdata_dir()}/", lang="osd", psm=osd_only) as api:
        api.SetImage(image.convert("L" if mode == "L" else "RGB"))
        expected = api.DetectOrientationScript()
    found = ScriptDetector().detect(image)
    assert found is not None
    assert (found.script, found.rotation) == ("Greek", 90)  # turned 90° anticlockwise
    assert (found.rotation, found.confidence) == ((360 - expected["orient_deg"]) % 360, expected["script_conf"])


def test_tesseract_reads_a_latin_page_in_the_job_language():
    """Tesseract also reads Latin script when a job asks for it by name (`engine=tesseract`)."""
    engine = make_engine("tesseract")
    image = Image.new("L", (1600, 300), 255)
    font = ImageFont.truetype(str(DEJAVU), 46)
    ImageDraw.Draw(image).text((100, 100), "Archives keep letters and maps.", font=font, fill=0)
    page = read_page(engine, image, language="eng", dpi=300)
    assert character_error_rate(page.text, "Archives keep letters and maps.") <= 0.03


def test_tesseract_refuses_a_language_it_has_no_model_for_as_the_pages_fault():
    """Asked directly (a job naming `engine=tesseract`), a missing model or an unknown code is an
    EngineUnavailableError: the page fails at once with the cause, without retries."""
    engine = make_engine("tesseract")
    blank = Image.new("L", (200, 100), 255)
    with pytest.raises(EngineUnavailableError, match="tesseract-ocr-ukr"):
        engine.recognize(blank, language="ukr", dpi=300)
    with pytest.raises(EngineUnavailableError, match="unknown language code"):
        engine.recognize(blank, language="en_US", dpi=300)
