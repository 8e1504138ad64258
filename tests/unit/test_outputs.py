"""Output renderers on small synthetic pages: structure, coordinates, escaping and edge cases.

Real OCR of real scans, and what real consumers (pdfalto, pypdfium2, hOCR parsers) make of the
outputs, is in test_outputs_real.py. The ALTO structural check here (`assert_valid_alto`) stands
in for the ALTO 4.2 XSD, which no PyPI package ships; it checks what the XSD would for the
elements and attributes the renderer writes.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter

import pikepdf
import pikepdf.pdfa
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
import pytest
from lxml import etree, html
from PIL import Image

from bulkocr import __version__
from bulkocr.page_model import Block, Box, Line, PageText, Word
from bulkocr.renderers import FORMATS, EmptyDocumentError, OcrPage, render
from bulkocr.renderers.words import line_words

XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
A = f"{{{ALTO_NS}}}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
TRICKY = 'a&b<c>"d"'


def word(text: str, x0: int, y0: int, x1: int, y1: int, confidence: float = 0.9) -> Word:
    return Word(text=text, box=Box(x0=x0, y0=y0, x1=x1, y1=y1), confidence=confidence)


def line(*words: Word) -> Line:
    return Line(
        text=" ".join(w.text for w in words),
        box=Box.union([w.box for w in words]),
        confidence=min(w.confidence for w in words),
        words=list(words),
    )


def block(*lines: Line) -> Block:
    return Block(box=Box.union([li.box for li in lines]), lines=list(lines))


def page(*blocks: Block, width: int = 1000, height: int = 800, dpi: int = 200, engine: str = "test-engine") -> PageText:
    return PageText(width=width, height=height, dpi=dpi, engine=engine, blocks=list(blocks))


def two_column_page() -> PageText:
    """Two blocks of two lines each, and a tricky word that needs escaping everywhere."""
    left = block(
        line(word("Hello", 100, 100, 200, 130, 0.99), word("world", 210, 100, 300, 130, 0.5)),
        line(word(TRICKY, 100, 140, 260, 170, 0.0)),
    )
    right = block(line(word("Right", 600, 100, 700, 130, 1.0)), line(word("column", 600, 140, 720, 170, 0.75)))
    return page(left, right)


def empty_page() -> PageText:
    return page(width=640, height=480, dpi=72)


def document() -> list[OcrPage]:
    return [OcrPage(two_column_page()), OcrPage(empty_page()), OcrPage(two_column_page())]


def model_words(pages: list[PageText]) -> list[tuple[str, Box]]:
    return [(w.text, w.box) for p in pages for li in p.lines for w in li.words]


def png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


# --- the registry -----------------------------------------------------------------------------


def test_every_format_is_registered_with_its_media_type_and_extension() -> None:
    """FORMATS names the six formats, each with a media type, an extension with its dot, and a writer."""
    assert {name: (f.media_type, f.extension) for name, f in FORMATS.items()} == {
        "text": ("text/plain; charset=utf-8", ".txt"),
        "json": ("application/json", ".json"),
        "hocr": ("text/html; charset=utf-8", ".html"),
        "alto": ("application/xml", ".alto.xml"),
        "miniocr": ("application/xml", ".miniocr.xml"),
        "pdf": ("application/pdf", ".pdf"),
    }
    assert [name for name, f in FORMATS.items() if f.needs_images] == ["pdf"]


def test_render_returns_what_the_writer_writes() -> None:
    """render(name, pages) is the writer's output as bytes, and reads a one-shot iterator of pages."""
    out = io.BytesIO()
    FORMATS["hocr"].write(document(), out)
    assert render("hocr", iter(document())) == out.getvalue()


def test_unknown_format_is_a_key_error() -> None:
    """Asking for a format that does not exist fails loudly instead of guessing."""
    with pytest.raises(KeyError):
        render("docx", document())


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_document_without_pages_is_refused(name: str) -> None:
    """Every format refuses an empty document, before writing anything."""
    out = io.BytesIO()
    with pytest.raises(EmptyDocumentError):
        FORMATS[name].write([], out)
    assert out.getvalue() == b""


# --- words shared by all formats --------------------------------------------------------------


def test_a_line_without_word_boxes_is_split_across_its_box() -> None:
    """A line the engine gave no word boxes gets one word per space-separated token, each with a
    slice of the line box in proportion to its characters, the line's confidence, and no overlap."""
    bare = Line(text="ab  cdef", box=Box(x0=100, y0=10, x1=170, y1=30), confidence=0.6)
    words = line_words(bare)
    assert [w.text for w in words] == ["ab", "cdef"]
    assert [w.box for w in words] == [Box(x0=100, y0=10, x1=120, y1=30), Box(x0=130, y0=10, x1=170, y1=30)]
    assert {w.confidence for w in words} == {0.6}


def test_control_characters_and_empty_words_are_dropped() -> None:
    """Characters XML cannot hold (and the form feed that separates pages) are removed from words,
    and a word left empty is dropped rather than written as an empty element."""
    noisy = line(word("ok\x0cay\x00", 0, 0, 10, 10), word("\x07 ", 12, 0, 20, 10), word("\ufffe", 22, 0, 30, 10))
    assert [w.text for w in line_words(noisy)] == ["okay"]


# --- plain text -------------------------------------------------------------------------------


def test_text_is_in_reading_order_with_pages_separated_by_form_feeds() -> None:
    """Lines are separated by a newline, blocks by a blank line, pages by a form feed, and an empty
    page is an empty string between two form feeds."""
    expected_page = f"Hello world\n{TRICKY}\n\nRight\ncolumn"
    assert render("text", document()).decode("utf-8") == f"{expected_page}\f\f{expected_page}"


def test_a_form_feed_in_ocr_text_cannot_fake_a_page_break() -> None:
    """Control characters inside recognised text are dropped, so form feeds only ever separate pages."""
    odd = page(block(Line(text="one\x0ctwo", box=Box(x0=0, y0=0, x1=9, y1=9), confidence=1.0)))
    assert render("text", [OcrPage(odd)]) == b"onetwo"


# --- JSON -------------------------------------------------------------------------------------


def test_json_holds_every_page_model_exactly() -> None:
    """The JSON document is {"pages": [...]} and each page reads back as the very same PageText."""
    pages = [p.text for p in document()]
    data = json.loads(render("json", document()))
    assert [PageText.model_validate(item) for item in data["pages"]] == pages


# --- hOCR -------------------------------------------------------------------------------------


def hocr_root(data: bytes) -> etree._Element:
    """hOCR parsed as XML: this fails on anything that is not well-formed."""
    return etree.fromstring(data)


def test_hocr_is_well_formed_xhtml_with_the_hocr_metadata() -> None:
    """The file is XML in the XHTML namespace, declares UTF-8, the OCR system, the capabilities
    it uses and the number of pages, and has one ocr_page per page."""
    data = render("hocr", document())
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>')
    root = hocr_root(data)
    assert root.tag == f"{XHTML}html"
    meta = {m.get("name"): m.get("content", "") for m in root.iter(f"{XHTML}meta") if m.get("name")}
    assert meta["ocr-system"] == f"bulkocr {__version__} (test-engine)"
    assert set(meta["ocr-capabilities"].split()) == {
        "ocr_page",
        "ocr_carea",
        "ocr_par",
        "ocr_line",
        "ocrx_word",
        "ocrp_wconf",
    }
    assert meta["ocr-number-of-pages"] == "3"
    pages = root.findall(f".//{XHTML}div[@class='ocr_page']")
    assert [p.get("title") for p in pages] == [
        'image "page-0001.png"; bbox 0 0 1000 800; ppageno 0; scan_res 200 200',
        'image "page-0002.png"; bbox 0 0 640 480; ppageno 1; scan_res 72 72',
        'image "page-0003.png"; bbox 0 0 1000 800; ppageno 2; scan_res 200 200',
    ]


def test_hocr_nests_blocks_paragraphs_lines_and_words_with_their_boxes() -> None:
    """Each block is an ocr_carea holding one ocr_par; lines are ocr_line spans whose direct
    children are the ocrx_word spans, each with the model's bbox; every id is unique."""
    root = hocr_root(render("hocr", [OcrPage(two_column_page())]))
    page_div = root.find(f".//{XHTML}div[@class='ocr_page']")
    assert page_div is not None
    careas = page_div.findall(f"{XHTML}div[@class='ocr_carea']")
    assert [c.get("title") for c in careas] == ["bbox 100 100 300 170", "bbox 600 100 720 170"]
    assert all([p.get("class") for p in c] == ["ocr_par"] for c in careas)
    lines = root.findall(f".//{XHTML}span[@class='ocr_line']")
    assert [li.get("title") for li in lines] == [
        "bbox 100 100 300 130",
        "bbox 100 140 260 170",
        "bbox 600 100 700 130",
        "bbox 600 140 720 170",
    ]
    words = [(w.text, w.get("title")) for li in lines for w in li]
    assert words == [
        ("Hello", "bbox 100 100 200 130; x_wconf 99"),
        ("world", "bbox 210 100 300 130; x_wconf 50"),
        (TRICKY, "bbox 100 140 260 170; x_wconf 0"),
        ("Right", "bbox 600 100 700 130; x_wconf 100"),
        ("column", "bbox 600 140 720 170; x_wconf 75"),
    ]
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))


def test_hocr_escapes_markup_characters_in_words() -> None:
    """&, < and > in a word are escaped in the file and come back as the same characters."""
    data = render("hocr", [OcrPage(two_column_page())])
    assert b"a&amp;b&lt;c&gt;" in data
    texts = [w.text for w in hocr_root(data).iter(f"{XHTML}span") if w.get("class") == "ocrx_word"]
    assert TRICKY in texts


def test_hocr_x_wconf_is_an_integer_percentage() -> None:
    """x_wconf is the confidence as a whole number from 0 to 100."""
    confidences = [0.0, 0.004, 0.5, 0.996, 1.0]
    words = [word(f"w{n}", 10 * n, 0, 10 * n + 8, 10, c) for n, c in enumerate(confidences)]
    root = hocr_root(render("hocr", [OcrPage(page(block(line(*words))))]))
    titles = [w.get("title") or "" for w in root.iter(f"{XHTML}span") if w.get("class") == "ocrx_word"]
    assert [int(t.rsplit("x_wconf ", 1)[1]) for t in titles] == [0, 0, 50, 100, 100]


def test_hocr_reads_the_same_with_an_html_parser() -> None:
    """An HTML (not XML) parser sees the same sibling pages and words; and no element other than
    HTML's void ones is written self-closing, which an HTML5 parser would read as an opening tag
    (an empty page included)."""
    data = render("hocr", document())
    assert re.findall(rb"<(?!meta\b)[a-z]+\b[^>]*/>", data) == []
    tree = html.fromstring(data)
    pages = tree.find_class("ocr_page")
    assert len(pages) == 3
    assert {parent.tag for parent in (p.getparent() for p in pages) if parent is not None} == {"body"}
    assert [w.text for w in tree.find_class("ocrx_word")] == [w for w, _ in model_words([p.text for p in document()])]


def test_hocr_uses_the_given_image_name() -> None:
    """A page's name becomes the hOCR image property; a double quote in it cannot end the string."""
    root = hocr_root(render("hocr", [OcrPage(empty_page(), name='scan "7".tif')]))
    page_div = root.find(f".//{XHTML}div[@class='ocr_page']")
    assert page_div is not None
    assert (page_div.get("title") or "").startswith('image "scan %227%22.tif"; bbox 0 0 640 480')


# --- ALTO -------------------------------------------------------------------------------------


def _attributes_are_numbers(element: etree._Element, *names: str) -> None:
    for name in names:
        value = element.get(name, "")
        assert NUMBER.match(value), f"{element.tag!r} {name}={value!r}"


def _assert_valid_text_line(text_line: etree._Element) -> None:
    children = [c.tag for c in text_line]
    # (String, SP?)+ as the schema has it: at least one String, SPs only between strings here.
    assert children, "a TextLine needs at least one String"
    assert children[::2] == [f"{A}String"] * len(children[::2])
    assert children[1::2] == [f"{A}SP"] * len(children[1::2])
    assert children[-1] == f"{A}String"
    _attributes_are_numbers(text_line, "HPOS", "VPOS", "WIDTH", "HEIGHT")
    for child in text_line:
        if child.tag == f"{A}String":
            assert child.get("CONTENT"), "String needs CONTENT"
            _attributes_are_numbers(child, "HPOS", "VPOS", "WIDTH", "HEIGHT", "WC")
            assert 0.0 <= float(child.get("WC", "")) <= 1.0
        else:
            _attributes_are_numbers(child, "HPOS", "VPOS", "WIDTH")


def _assert_valid_page(page_element: etree._Element) -> None:
    assert page_element.get("ID")
    _attributes_are_numbers(page_element, "PHYSICAL_IMG_NR", "WIDTH", "HEIGHT")
    assert [c.tag for c in page_element] == [f"{A}PrintSpace"]
    print_space = page_element[0]
    _attributes_are_numbers(print_space, "HPOS", "VPOS", "WIDTH", "HEIGHT")
    for text_block in print_space:
        assert text_block.tag == f"{A}TextBlock"
        assert text_block.get("ID"), "TextBlock needs an ID"
        _attributes_are_numbers(text_block, "HPOS", "VPOS", "WIDTH", "HEIGHT")
        for text_line in text_block:
            assert text_line.tag == f"{A}TextLine"
            _assert_valid_text_line(text_line)


def assert_valid_alto(data: bytes) -> etree._Element:
    """What the ALTO 4.2 XSD requires of the parts the renderer writes: element order and
    nesting, required attributes, number types, WC in 0..1, unique NCName IDs, references
    that resolve. Returns the parsed root."""
    root = etree.fromstring(data)
    assert root.tag == f"{A}alto"
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation", "").startswith(ALTO_NS + " ")
    assert [c.tag for c in root] == [f"{A}Description", f"{A}Layout"]
    description, layout = root
    assert description[0].tag == f"{A}MeasurementUnit"
    assert description[0].text == "pixel"
    for processing in description[1:]:
        assert processing.tag == f"{A}Processing"
        assert processing.get("ID")
        assert [c.tag for c in processing] == [f"{A}processingCategory", f"{A}processingSoftware"]
        assert processing[0].text == "contentGeneration"
        assert [c.tag for c in processing[1]] == [
            f"{A}softwareName",
            f"{A}softwareVersion",
            f"{A}applicationDescription",
        ]
    assert len(layout) >= 1
    for page_element in layout:
        assert page_element.tag == f"{A}Page"
        _assert_valid_page(page_element)
    ids = [e.get("ID") or "" for e in root.iter() if e.get("ID") is not None]
    assert len(ids) == len(set(ids))
    assert all(NCNAME.match(i) for i in ids)
    refs = {r for e in root.iter() for r in (e.get("PROCESSINGREFS") or "").split()}
    assert refs <= set(ids)
    return root


def alto_strings(root: etree._Element) -> list[tuple[str, Box]]:
    return [
        (
            s.get("CONTENT", ""),
            Box(
                x0=int(s.get("HPOS", "")),
                y0=int(s.get("VPOS", "")),
                x1=int(s.get("HPOS", "")) + int(s.get("WIDTH", "")),
                y1=int(s.get("VPOS", "")) + int(s.get("HEIGHT", "")),
            ),
        )
        for s in root.iter(f"{A}String")
    ]


def test_alto_has_the_structure_the_schema_requires() -> None:
    """A multi-page document is valid ALTO 4 in structure: Description (pixel unit, one Processing
    for the engine) then Layout with a Page per page, numbered from 1, with its pixel size."""
    root = assert_valid_alto(render("alto", document()))
    pages = root.findall(f"{A}Layout/{A}Page")
    assert [(p.get("PHYSICAL_IMG_NR"), p.get("WIDTH"), p.get("HEIGHT")) for p in pages] == [
        ("1", "1000", "800"),
        ("2", "640", "480"),
        ("3", "1000", "800"),
    ]
    assert {p.get("PROCESSINGREFS") for p in pages} == {"processing_1"}
    assert root.findtext(f".//{A}applicationDescription") == "test-engine"
    assert pages[1].find(f"{A}PrintSpace/{A}TextBlock") is None


def test_alto_positions_are_the_model_boxes() -> None:
    """Each String is a word: HPOS/VPOS its top left, WIDTH/HEIGHT its size, WC its confidence, and
    the SP between two strings spans the gap from one to the next."""
    root = assert_valid_alto(render("alto", [OcrPage(two_column_page())]))
    assert alto_strings(root) == model_words([two_column_page()])
    assert [s.get("WC") for s in root.iter(f"{A}String")] == ["0.990", "0.500", "0.000", "1.000", "0.750"]
    space = root.find(f".//{A}SP")
    assert space is not None
    assert (space.get("HPOS"), space.get("WIDTH")) == ("200", "10")


def test_alto_escapes_markup_characters_in_content() -> None:
    """A word with &, <, > and quotes is escaped in the attribute and reads back unchanged."""
    data = render("alto", [OcrPage(two_column_page())])
    assert b'CONTENT="a&amp;b&lt;c&gt;&quot;d&quot;"' in data
    assert TRICKY in [s.get("CONTENT") for s in etree.fromstring(data).iter(f"{A}String")]


def test_alto_leaves_out_lines_without_words() -> None:
    """A line whose only words are empty after cleaning is left out (a TextLine needs a String),
    and so is a block left with no lines; a line without word boxes gets spread words."""
    blank = block(line(word("\x00", 0, 0, 5, 5)))
    bare = Line(text="two words", box=Box(x0=0, y0=50, x1=90, y1=60), confidence=0.8)
    root = assert_valid_alto(render("alto", [OcrPage(page(blank, block(bare)))]))
    assert len(root.findall(f".//{A}TextBlock")) == 1
    assert [s for s, _ in alto_strings(root)] == ["two", "words"]


def test_alto_lists_each_engine_once() -> None:
    """Pages read by different engines point to a Processing entry each."""
    pages = [OcrPage(page(engine="one")), OcrPage(page(engine="two")), OcrPage(page(engine="one"))]
    root = assert_valid_alto(render("alto", pages))
    assert [e.text for e in root.iter(f"{A}applicationDescription")] == ["one", "two"]
    assert [p.get("PROCESSINGREFS") for p in root.iter(f"{A}Page")] == ["processing_1", "processing_2", "processing_1"]


# --- MiniOCR ----------------------------------------------------------------------------------


def test_miniocr_has_one_page_per_page_with_integer_sizes() -> None:
    """<ocr> holds a <p> per page with a unique xml:id and wh as two integers, as the
    solr-ocrhighlighting parser reads it (regex wh="(\\d+) (\\d+)")."""
    data = render("miniocr", document())
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ocr><p xml:id="sequence_1" wh="1000 800">')
    root = etree.fromstring(data)
    assert root.tag == "ocr"
    assert [(p.tag, p.get(XML_ID), p.get("wh")) for p in root] == [
        ("p", "sequence_1", "1000 800"),
        ("p", "sequence_2", "640 480"),
        ("p", "sequence_3", "1000 800"),
    ]
    assert re.findall(rb'wh=["\'](\d+) (\d+)["\']', data) == [(b"1000", b"800"), (b"640", b"480"), (b"1000", b"800")]


def test_miniocr_words_carry_integer_pixel_boxes() -> None:
    """Blocks are <b>, lines <l>, words <w x="x y w h"> in integer pixels, separated by a space."""
    root = etree.fromstring(render("miniocr", [OcrPage(two_column_page())]))
    assert [len(b) for b in root.iter("b")] == [2, 2]
    words = list(root.iter("w"))
    assert all(re.fullmatch(r"\d+ \d+ \d+ \d+", w.get("x", "")) for w in words)
    boxes = [tuple(int(v) for v in w.get("x", "").split()) for w in words]
    expected = [(b.x0, b.y0, b.width, b.height) for _, b in model_words([two_column_page()])]
    assert boxes == expected
    first_line = next(root.iter("l"))
    assert "".join(first_line.itertext()) == "Hello world"


def test_miniocr_escapes_markup_characters() -> None:
    """A word with &, < and > is escaped in the file and reads back unchanged."""
    data = render("miniocr", [OcrPage(two_column_page())])
    assert b'>a&amp;b&lt;c&gt;"d"</w>' in data
    assert TRICKY in [w.text for w in etree.fromstring(data).iter("w")]


# --- PDF --------------------------------------------------------------------------------------


def test_pdf_pages_have_the_image_size_at_the_page_dpi_and_extractable_words() -> None:
    """Page size in points is pixels x 72 / dpi, per page; every word, escaping characters
    included, extracts as text; and the file passes pikepdf's PDF/A-2b validation."""
    first, second = (
        two_column_page(),
        page(block(line(word("Second", 10, 10, 200, 60))), width=300, height=400, dpi=100),
    )
    data = render("pdf", [OcrPage(first, png(1000, 800)), OcrPage(second, png(300, 400, "RGB"))])
    with pdfium.PdfDocument(data) as pdf:
        assert [pdf[i].get_size() for i in range(len(pdf))] == [(360.0, 288.0), (216.0, 288.0)]
        texts = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    assert Counter(texts[0].split()) == Counter(text for text, _ in model_words([first]))
    assert texts[1].split() == ["Second"]
    assert pikepdf.pdfa.validate_written(io.BytesIO(data), "2b").passed


def test_pdf_of_an_empty_page_is_the_image_alone() -> None:
    """A page with no text is still a page: the image, and no text."""
    data = render("pdf", [OcrPage(empty_page(), png(640, 480, "1"))])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert len(pdf.pages) == 1
        assert len(pdf.pages[0].get_images()) == 1
    with pdfium.PdfDocument(data) as pdf:
        assert pdf[0].get_textpage().get_text_range() == ""


def test_pdf_takes_images_of_other_modes_as_rgb() -> None:
    """A palette or CMYK image (which PDF/A with an sRGB intent cannot show as it is) goes in as
    RGB, and the file still passes PDF/A-2b validation."""
    cmyk = io.BytesIO()
    Image.new("CMYK", (640, 480), (0, 0, 0, 0)).save(cmyk, format="JPEG")
    pages = [OcrPage(empty_page(), png(640, 480, "P")), OcrPage(empty_page(), cmyk.getvalue())]
    data = render("pdf", pages)
    with pikepdf.open(io.BytesIO(data)) as pdf:
        spaces = [str(image.ColorSpace) for page in pdf.pages for image in page.get_images().values()]
    assert spaces == ["/DeviceRGB", "/DeviceRGB"]
    assert pikepdf.pdfa.validate_written(io.BytesIO(data), "2b").passed


def test_pdf_pages_of_tiny_and_huge_images_stay_within_pdf_a_page_sizes() -> None:
    """A 1 x 1 pixel scan at 300 dpi would be a 0.24-point page and a 30,000-pixel strip at
    72 dpi a 416-inch one, both outside PDF/A's 3 to 14,400 points: they are laid out at the
    nearest dpi that fits, in proportion, and the file passes PDF/A-2b validation."""
    tiny = PageText(width=1, height=1, dpi=300, engine="null")
    strip = PageText(width=30_000, height=500, dpi=72, engine="null")
    data = render("pdf", [OcrPage(tiny, png(1, 1)), OcrPage(strip, png(30_000, 500))])
    with pikepdf.open(io.BytesIO(data)) as pdf:
        sizes = [(float(page.MediaBox[2]), float(page.MediaBox[3])) for page in pdf.pages]
    assert sizes[0] == (3.0, 3.0)
    assert sizes[1][0] <= 14_400
    assert sizes[1][0] / sizes[1][1] == pytest.approx(60, rel=0.01)
    assert pikepdf.pdfa.validate_written(io.BytesIO(data), "2b").passed


def test_pdf_needs_every_page_image() -> None:
    """The searchable PDF refuses a page without its image."""
    with pytest.raises(ValueError, match="page 2: a searchable PDF needs the page image"):
        render("pdf", [OcrPage(empty_page(), png(640, 480)), OcrPage(empty_page())])


def test_pdf_refuses_an_image_the_boxes_do_not_fit() -> None:
    """An image of another size than the OCR's page would put every word in the wrong place."""
    with pytest.raises(ValueError, match="the image is 480x640 pixels but its OCR boxes are for 640x480"):
        render("pdf", [OcrPage(empty_page(), png(480, 640))])
