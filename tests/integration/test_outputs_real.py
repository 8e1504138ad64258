"""Every output format of real OCR of real scans, read back by the tools that consume them.

Three pages go through the real engine once (about 15 s on one core): linn.png (two columns),
cardinal.pdf's third page (the same page upside down, so the boxes refer to the turned image)
and c02-22.pdf (a book page with a large drop cap and an illustration). Then:
- the searchable PDF is read by pypdfium2 (text and character positions) and by pdfalto, the
  extractor Archipelago runs on PDFs, with Archipelago's own options;
- the hOCR by the hocr-spec validator and by OCRmyPDF's hOCR parser;
- ALTO and MiniOCR by lxml;
and each must carry the words and boxes of the JSON page model.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pdfalto
import pikepdf
import pikepdf.pdfa
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
import pytest
from lxml import etree
from ocrmypdf.hocrtransform import HocrParser
from PIL import Image, ImageChops, ImageStat

from bulkocr.page_model import Box, PageText
from bulkocr.renderers import OcrPage, render
from bulkocr_ocr_worker.engines import make_engine, read_page
from bulkocr_ocr_worker.orientation import turn_clockwise
from tests.ocr_quality import TEST_DATA, character_error_rate, render_pdf_pages
from tests.unit.test_outputs import alto_strings, assert_valid_alto

MAX_CHARACTER_ERROR_RATE = 0.02
SLACK_PX = 3  # extracted positions are rounded through PDF points; allow a few pixels
ARCHIPELAGO_PDFALTO_OPTIONS = ["-noLineNumbers", "-noImage", "-noImageInline", "-readingOrder", "-q"]

Words = list[tuple[str, Box]]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def document() -> list[OcrPage]:
    """The three scans OCR'd, each with the upright image its boxes refer to, as PNG."""
    with Image.open(TEST_DATA / "linn.png") as linn:
        scans = [linn.convert("L")]
    scans.append(render_pdf_pages(TEST_DATA / "cardinal.pdf")[2])
    scans.append(render_pdf_pages(TEST_DATA / "c02-22.pdf")[0])
    engine = make_engine("rapidocr")
    pages = []
    for scan in scans:
        text = read_page(engine, scan, language=None, dpi=300)
        pages.append(OcrPage(text, png(turn_clockwise(scan, text.rotation))))
    assert [page.text.rotation for page in pages] == [0, 180, 0]
    return pages


@pytest.fixture(scope="module")
def json_pages(document: list[OcrPage]) -> list[PageText]:
    """The page models as the JSON output holds them: the reference the other formats must match."""
    return [PageText.model_validate(page) for page in json.loads(render("json", document))["pages"]]


@pytest.fixture(scope="module")
def searchable_pdf(document: list[OcrPage]) -> bytes:
    return render("pdf", document)


def words_of(page: PageText) -> Words:
    return [(word.text, word.box) for line in page.lines for word in line.words]


def inside(box: Box, x: float, y: float) -> bool:
    return box.x0 - SLACK_PX <= x <= box.x1 + SLACK_PX and box.y0 - SLACK_PX <= y <= box.y1 + SLACK_PX


def test_the_pdf_text_layer_reads_as_the_ocr_text(searchable_pdf: bytes, json_pages: list[PageText]) -> None:
    """pypdfium2 extracts each page's text with at most 2 % character errors against the OCR text,
    and each page is the image's size at 300 dpi."""
    with pdfium.PdfDocument(searchable_pdf) as pdf:
        assert len(pdf) == len(json_pages)
        for index, page in enumerate(json_pages):
            assert pdf[index].get_size() == pytest.approx((page.width * 72 / 300, page.height * 72 / 300), abs=0.01)
            extracted = pdf[index].get_textpage().get_text_range()
            assert character_error_rate(extracted, page.text) <= MAX_CHARACTER_ERROR_RATE


def located_characters(textpage: pdfium.PdfTextPage, words: Words) -> Iterator[tuple[Box, float, float]]:
    """Each word's characters found in reading order in the extracted text, with their box centres
    in PDF points (origin bottom left); words the extractor split differently are skipped."""
    count = textpage.count_chars()
    text = textpage.get_text_range(0, count)
    cursor = 0
    for word_text, box in words:
        start = text.find(word_text, cursor)
        if start < 0:
            continue
        cursor = start + len(word_text)
        for index in range(start, cursor):
            left, bottom, right, top = textpage.get_charbox(index)
            yield box, (left + right) / 2, (bottom + top) / 2


def test_the_pdf_text_sits_on_the_words_in_the_image(searchable_pdf: bytes, json_pages: list[PageText]) -> None:
    """Every extracted character's centre, turned from PDF points back into image pixels, lies in
    the box of the word it belongs to (within a few pixels): search hits highlight the right place,
    on the upside-down page too."""
    with pdfium.PdfDocument(searchable_pdf) as pdf:
        for index, page in enumerate(json_pages):
            scale = page.dpi / 72
            height_pt = pdf[index].get_size()[1]
            characters = list(located_characters(pdf[index].get_textpage(), words_of(page)))
            assert len(characters) >= 0.95 * sum(len(text) for text, _ in words_of(page))
            misplaced = [(box, x, y) for box, x, y in characters if not inside(box, x * scale, (height_pt - y) * scale)]
            assert misplaced == []


def test_the_pdf_shows_the_page_image_the_boxes_refer_to(document: list[OcrPage], searchable_pdf: bytes) -> None:
    """Rendered back at the page's dpi, each PDF page is the image it was given, pixel for pixel
    (to within rounding): the image fills the page unscaled and unturned, so the text layer, which
    sits on the OCR boxes, sits on the words in the image."""
    with pdfium.PdfDocument(searchable_pdf) as pdf:
        for index, page in enumerate(document):
            assert page.image is not None
            bitmap = pdf[index].render(scale=page.text.dpi / 72, grayscale=True)
            shown = bitmap.to_pil().convert("L")
            with Image.open(io.BytesIO(page.image)) as given:
                # PDFium rounds the rendered size up where points x scale is a hair over a whole pixel.
                assert shown.width - given.width in (0, 1)
                assert shown.height - given.height in (0, 1)
                difference = ImageChops.difference(shown.crop((0, 0, *given.size)), given.convert("L"))
            # 0 where the sizes agree; a page rendered a row taller is resampled, a few grey levels
            # off on average. The wrong image, or this one upside down, is over 30 off.
            assert ImageStat.Stat(difference).mean[0] < 5.0


def pdfalto_words(pdf_file: Path, page_number: int, alto_file: Path) -> tuple[list[tuple[str, float, float]], float]:
    """The words pdfalto extracts from one page, each with its centre in PDF points from the top
    left, and the page height in points."""
    command = [str(pdfalto.binary_path()), *ARCHIPELAGO_PDFALTO_OPTIONS, "-f", str(page_number), "-l", str(page_number)]
    subprocess.run([*command, str(pdf_file), str(alto_file)], check=True, capture_output=True, timeout=60)
    root = etree.parse(str(alto_file)).getroot()
    namespace = {"alto": root.nsmap[None]}
    words = []
    for string in root.iterfind(".//alto:String", namespaces=namespace):
        x, y, width, height = (float(string.get(name, "")) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
        words.append((string.get("CONTENT", ""), x + width / 2, y + height / 2))
    page = root.find(".//alto:Page", namespaces=namespace)
    assert page is not None
    return words, float(page.get("HEIGHT", ""))


def test_pdfalto_extracts_the_same_words_in_the_same_places(
    searchable_pdf: bytes, json_pages: list[PageText], tmp_path: Path
) -> None:
    """pdfalto, run per page with the options Archipelago uses, finds exactly the OCR's words, and
    the centre of each lies in the box of an OCR word with the same text: Archipelago's MiniOCR
    built from our PDF highlights what we recognised, where we recognised it."""
    pdf_file = tmp_path / "document.pdf"
    pdf_file.write_bytes(searchable_pdf)
    for number, page in enumerate(json_pages, start=1):
        extracted, height_pt = pdfalto_words(pdf_file, number, tmp_path / f"page-{number}.xml")
        expected = words_of(page)
        assert Counter(text for text, _, _ in extracted) == Counter(text for text, _ in expected)
        assert height_pt == pytest.approx(page.height * 72 / page.dpi, abs=0.01)
        scale = page.dpi / 72
        boxes_by_text: dict[str, list[Box]] = {}
        for text, box in expected:
            boxes_by_text.setdefault(text, []).append(box)
        for text, x, y in extracted:
            assert any(inside(box, x * scale, y * scale) for box in boxes_by_text[text]), (text, x, y)


def test_the_pdf_is_valid_pdfa_2b(searchable_pdf: bytes) -> None:
    """The file passes pikepdf's allowlist PDF/A-2b validator, declares PDF/A-2B in its XMP, and
    carries an sRGB output intent."""
    assert pikepdf.pdfa.validate_written(io.BytesIO(searchable_pdf), "2b").passed
    with pikepdf.open(io.BytesIO(searchable_pdf)) as pdf:
        metadata = pdf.open_metadata()
        assert (metadata.get("pdfaid:part"), metadata.get("pdfaid:conformance")) == ("2", "B")
        assert str(pdf.Root.OutputIntents[0].OutputConditionIdentifier) == "sRGB"


def test_hocr_passes_the_hocr_spec_validator(document: list[OcrPage], tmp_path: Path) -> None:
    """hocr-spec (the reference implementation of the hOCR 1.2 spec's rules) finds no error in the
    document's hOCR: classes, properties, capabilities and metadata."""
    hocr_file = tmp_path / "document.html"
    hocr_file.write_bytes(render("hocr", document))
    validator = Path(sys.executable).with_name("hocr-spec")
    result = subprocess.run([str(validator), str(hocr_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert "[ERROR]" not in result.stdout


def normalised(words: Words) -> Words:
    """Words as OCRmyPDF's parser returns them: NFKC-normalised (it splits ligatures)."""
    return [(unicodedata.normalize("NFKC", text), box) for text, box in words]


def test_ocrmypdf_reads_our_hocr_back_as_the_model(
    document: list[OcrPage], json_pages: list[PageText], tmp_path: Path
) -> None:
    """OCRmyPDF's hOCR parser reads each page's hOCR back with the model's page size, words,
    boxes and confidences (to the percent x_wconf keeps)."""
    for number, (ocr_page, page) in enumerate(zip(document, json_pages, strict=True), start=1):
        hocr_file = tmp_path / f"page-{number}.html"
        hocr_file.write_bytes(render("hocr", [ocr_page]))
        parsed = HocrParser(hocr_file).parse()
        assert parsed.bbox is not None
        assert (parsed.bbox.width, parsed.bbox.height) == (page.width, page.height)
        parsed_words = parsed.words
        got = [
            (w.text, Box(x0=int(w.bbox.left), y0=int(w.bbox.top), x1=int(w.bbox.right), y1=int(w.bbox.bottom)))
            for w in parsed_words
            if w.bbox is not None
        ]
        assert got == normalised(words_of(page))
        confidences = [w.confidence for w in parsed_words]
        expected = [round(word.confidence * 100) / 100 for line in page.lines for word in line.words]
        assert confidences == pytest.approx(expected)


def test_hocr_alto_and_miniocr_carry_the_json_words_and_boxes(
    document: list[OcrPage], json_pages: list[PageText]
) -> None:
    """Parsed with lxml, hOCR's word spans, ALTO's Strings and MiniOCR's <w> elements hold exactly
    the JSON model's words, in reading order, with its boxes."""
    expected = [word for page in json_pages for word in words_of(page)]

    hocr = etree.fromstring(render("hocr", document))
    hocr_words = []
    for span in hocr.iterfind(".//{http://www.w3.org/1999/xhtml}span[@class='ocrx_word']"):
        x0, y0, x1, y1 = (int(v) for v in span.get("title", "").split(";")[0].split()[1:])
        hocr_words.append((span.text, Box(x0=x0, y0=y0, x1=x1, y1=y1)))
    assert hocr_words == expected

    alto = assert_valid_alto(render("alto", document))
    assert alto_strings(alto) == expected

    miniocr = etree.fromstring(render("miniocr", document))
    miniocr_words = []
    for w in miniocr.iter("w"):
        x, y, width, height = (int(v) for v in w.get("x", "").split())
        miniocr_words.append((w.text, Box(x0=x, y0=y, x1=x + width, y1=y + height)))
    assert miniocr_words == expected
    assert [p.get("wh") for p in miniocr] == [f"{page.width} {page.height}" for page in json_pages]
