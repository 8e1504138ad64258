"""MiniOCR, the compact format of solr-ocrhighlighting: one `<p>` per page, in one `<ocr>` root.

`<p xml:id="sequence_N" wh="W H">` holds a `<b>` per block, an `<l>` per line and a `<w>` per
word, with the words of a line separated by a space. The parser reads `wh` as two integers
and `x` as "x y w h", either integers in pixels or fractions of the page; this writes
integer pixels, which are exact, with the page size in `wh`. Page ids count from 1 and are
named as Archipelago names the pages it indexes (sequence_1, sequence_2, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from lxml import etree

from bulkocr.page_model import PageText, Word
from bulkocr.renderers.document import OcrPage, without_images
from bulkocr.renderers.words import block_lines

XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document as one MiniOCR file, a page at a time."""
    texts = [page.text for page in without_images(pages)]
    out.write(XML_DECLARATION)
    with etree.xmlfile(out, encoding="utf-8") as xml, xml.element("ocr"):
        for number, text in enumerate(texts, start=1):
            xml.write(_page(number, text))


def _page(number: int, text: PageText) -> etree._Element:
    page = etree.Element("p", {XML_ID: f"sequence_{number}", "wh": f"{text.width} {text.height}"})
    for block in text.blocks:
        lines = block_lines(block)
        if not lines:
            continue
        block_element = etree.SubElement(page, "b")
        for _line, words in lines:
            line_element = etree.SubElement(block_element, "l")
            for word in words:
                _word(line_element, word)
    return page


def _word(line: etree._Element, word: Word) -> None:
    if len(line):
        line[-1].tail = " "
    box = word.box
    etree.SubElement(line, "w", x=f"{box.x0} {box.y0} {box.width} {box.height}").text = word.text
