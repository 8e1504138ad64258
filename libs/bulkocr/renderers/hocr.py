"""hOCR 1.2 as well-formed XHTML: one file holding every page of the document.

Structure per page: div.ocr_page > div.ocr_carea (one per block) > p.ocr_par > span.ocr_line >
span.ocrx_word. Every element has a `bbox` in page pixels; words carry `x_wconf` (0-100) and
pages their image name, size, physical page number (from 0, as Tesseract counts) and
resolution. Archipelago reads hOCR with an XHTML-namespaced XPath, only `ocr_line` lines, and
words as direct children of the line with a bbox: this layout satisfies all three.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from lxml import etree

from bulkocr import __version__
from bulkocr.page_model import Box, Line, Word
from bulkocr.renderers.document import OcrPage, image_name, without_images
from bulkocr.renderers.words import block_lines, clean_text

XHTML = "http://www.w3.org/1999/xhtml"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document as one hOCR file, a page at a time."""
    document = without_images(pages)
    out.write(XML_DECLARATION)
    with etree.xmlfile(out, encoding="utf-8") as xml:
        xml.write_doctype("<!DOCTYPE html>")
        with xml.element(f"{{{XHTML}}}html", nsmap={None: XHTML}):
            xml.write(_head(document))
            with xml.element(f"{{{XHTML}}}body"):
                xml.write("\n")
                for number, page in enumerate(document, start=1):
                    xml.write(_page(number, page))


def _head(document: list[OcrPage]) -> etree._Element:
    engines = ", ".join(dict.fromkeys(clean_text(page.text.engine) for page in document))
    head = _element("head")
    _child(head, "title").text = "OCR"
    _child(head, "meta", {"charset": "utf-8"})
    _child(head, "meta", {"name": "ocr-system", "content": f"bulkocr {__version__} ({engines})"})
    _child(head, "meta", {"name": "ocr-capabilities", "content": CAPABILITIES})
    _child(head, "meta", {"name": "ocr-number-of-pages", "content": str(len(document))})
    head.tail = "\n"
    return head


def _page(number: int, page: OcrPage) -> etree._Element:
    text = page.text
    # A double quote would end hOCR's quoted string early; a file name has no business holding one.
    name = image_name(number, page).replace('"', "%22")
    div = _element(
        "div",
        {
            "class": "ocr_page",
            "id": f"page_{number}",
            "title": f'image "{name}"; bbox 0 0 {text.width} {text.height}; '
            f"ppageno {number - 1}; scan_res {text.dpi} {text.dpi}",
        },
    )
    # Never self-closing, even when empty: an HTML parser reads <div/> as an opening tag.
    div.text = div.tail = "\n"
    line_count = word_count = 0
    for block_number, block in enumerate(text.blocks, start=1):
        lines = block_lines(block)
        if not lines:
            continue
        block_id = f"{number}_{block_number}"
        carea = _child(div, "div", {"class": "ocr_carea", "id": f"block_{block_id}", "title": _bbox(block.box)})
        paragraph = _child(carea, "p", {"class": "ocr_par", "id": f"par_{block_id}", "title": _bbox(block.box)})
        for line, words in lines:
            line_count += 1
            span = _line(paragraph, f"{number}_{line_count}", line)
            for word in words:
                word_count += 1
                _word(span, f"{number}_{word_count}", word)
    return div


def _line(paragraph: etree._Element, line_id: str, line: Line) -> etree._Element:
    span = _child(paragraph, "span", {"class": "ocr_line", "id": f"line_{line_id}", "title": _bbox(line.box)})
    span.tail = "\n"  # one line of text per line for anyone reading the HTML as text
    return span


def _word(line: etree._Element, word_id: str, word: Word) -> None:
    if len(line):
        line[-1].tail = " "  # words are separated by a space, as in the text they come from
    title = f"{_bbox(word.box)}; x_wconf {round(word.confidence * 100)}"
    _child(line, "span", {"class": "ocrx_word", "id": f"word_{word_id}", "title": title}).text = word.text


def _bbox(box: Box) -> str:
    return f"bbox {box.x0} {box.y0} {box.x1} {box.y1}"


def _element(tag: str, attributes: dict[str, str] | None = None) -> etree._Element:
    """An element to write on its own: it declares XHTML as its default namespace, as its parent does."""
    return etree.Element(f"{{{XHTML}}}{tag}", attributes, nsmap={None: XHTML})


def _child(parent: etree._Element, tag: str, attributes: dict[str, str] | None = None) -> etree._Element:
    return etree.SubElement(parent, f"{{{XHTML}}}{tag}", attributes)
