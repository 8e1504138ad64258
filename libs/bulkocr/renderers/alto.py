"""ALTO 4 (schema 4.2), in pixels: one file holding every page of the document.

Description names the unit and, per OCR engine used, a `Processing` step (ALTO 4's
replacement for the deprecated `OCRProcessing`) that pages point to with PROCESSINGREFS.
Layout has one Page per page (PHYSICAL_IMG_NR counts from 1), a PrintSpace covering the
page, a TextBlock per block, a TextLine per line and a String per word (WC is the word's
confidence, 0-1) with an SP between strings. The schema wants at least one String in a
TextLine, so lines without words are left out, and blocks left without lines with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from lxml import etree

from bulkocr import __version__
from bulkocr.page_model import Box, Line, PageText, Word
from bulkocr.renderers.document import OcrPage, without_images
from bulkocr.renderers.words import block_lines, clean_text

ALTO = "http://www.loc.gov/standards/alto/ns-v4#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{ALTO} http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document as one ALTO file, a page at a time."""
    texts = [page.text for page in without_images(pages)]
    processing_ids = {engine: f"processing_{n}" for n, engine in enumerate(dict.fromkeys(p.engine for p in texts), 1)}
    out.write(XML_DECLARATION)
    with etree.xmlfile(out, encoding="utf-8") as xml:
        root_attributes = {f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION, "SCHEMAVERSION": "4.2"}
        with xml.element(_tag("alto"), root_attributes, nsmap={None: ALTO, "xsi": XSI}):
            xml.write(_description(processing_ids))
            with xml.element(_tag("Layout")):
                for number, text in enumerate(texts, start=1):
                    xml.write(_page(number, text, processing_ids[text.engine]))


def _description(processing_ids: dict[str, str]) -> etree._Element:
    description = _element("Description")
    _child(description, "MeasurementUnit").text = "pixel"
    for engine, processing_id in processing_ids.items():
        processing = _child(description, "Processing", ID=processing_id)
        _child(processing, "processingCategory").text = "contentGeneration"
        software = _child(processing, "processingSoftware")
        _child(software, "softwareName").text = "bulkocr"
        _child(software, "softwareVersion").text = __version__
        _child(software, "applicationDescription").text = clean_text(engine)
    return description


def _page(number: int, text: PageText, processing_id: str) -> etree._Element:
    size = {"WIDTH": str(text.width), "HEIGHT": str(text.height)}
    page = _element("Page", ID=f"page_{number}", PHYSICAL_IMG_NR=str(number), PROCESSINGREFS=processing_id, **size)
    print_space = _child(page, "PrintSpace", HPOS="0", VPOS="0", **size)
    line_count = word_count = 0
    for block_number, block in enumerate(text.blocks, start=1):
        lines = block_lines(block)
        if not lines:
            continue
        text_block = _child(print_space, "TextBlock", ID=f"block_{number}_{block_number}", **_position(block.box))
        for line, words in lines:
            line_count += 1
            text_line = _line(text_block, f"line_{number}_{line_count}", line)
            for word in words:
                word_count += 1
                _string(text_line, f"string_{number}_{word_count}", word)
    return page


def _line(block: etree._Element, line_id: str, line: Line) -> etree._Element:
    return _child(block, "TextLine", ID=line_id, **_position(line.box))


def _string(line: etree._Element, string_id: str, word: Word) -> None:
    if len(line):
        # The space from the end of the previous word to the start of this one.
        previous_end = int(line[-1].get("HPOS", "0")) + int(line[-1].get("WIDTH", "0"))
        gap = max(0, word.box.x0 - previous_end)
        _child(line, "SP", HPOS=str(previous_end), VPOS=str(word.box.y0), WIDTH=str(gap))
    _child(line, "String", ID=string_id, **_position(word.box), WC=f"{word.confidence:.3f}", CONTENT=word.text)


def _position(box: Box) -> dict[str, str]:
    return {"HPOS": str(box.x0), "VPOS": str(box.y0), "WIDTH": str(box.width), "HEIGHT": str(box.height)}


def _tag(name: str) -> str:
    return f"{{{ALTO}}}{name}"


def _element(name: str, **attributes: str) -> etree._Element:
    """An element to write on its own: it declares ALTO as its default namespace, as its parent does."""
    return etree.Element(_tag(name), attributes, nsmap={None: ALTO})


def _child(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, _tag(name), attributes)
