"""Searchable PDF/A-2b: each page image, with an invisible text layer whose words lie on the
words in the image.

Why these libraries:

- The text layer is drawn by OCRmyPDF's renderer (`Fpdf2PdfRenderer`, on fpdf2), fed the page
  model directly as OCRmyPDF's engine-neutral `OcrElement` tree, with no hOCR in between. It
  sets each word in text render mode 3 (invisible) on the line's baseline, scaled horizontally
  to the word's box, with a font that covers the script (a glyphless one where no installed
  font does) and a ToUnicode map, so text extracts as it was recognised. Text layers are
  OCRmyPDF's main job; doing this by hand means relearning its fixes for viewers and
  extractors (one text object per line because poppler forgets Tz across them, unshaped
  ligatures, right-to-left words, CMap block limits).
- The page size is the image size at the page's dpi (pixels x 72 / dpi points), so one
  image pixel and one OCR box pixel are the same place on the page; a page that would be
  smaller or larger than PDF/A allows is laid out at the nearest dpi that fits (`page_dpi`).
- pikepdf joins the pages and saves PDF/A-2b: `pikepdf.pdfa.save` adds the sRGB output
  intent and the XMP metadata, writes the file and validates what it wrote (an allowlist
  validator: it passes nothing it does not know to conform), so no Ghostscript is needed.

Memory: pages are rendered one at a time to files in a scratch directory, and qpdf joins
them reading from those files, so no more than one page image is held in memory at a time;
the finished file is copied to `out` at the end.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pikepdf
import pikepdf.pdfa
from ocrmypdf.font import MultiFontManager
from ocrmypdf.fpdf_renderer import Fpdf2PdfRenderer
from ocrmypdf.hocrtransform import BoundingBox, OcrClass, OcrElement
from PIL import Image

from bulkocr import __version__
from bulkocr.page_model import Box, PageText
from bulkocr.renderers.document import OcrPage, numbered
from bulkocr.renderers.words import block_lines

PDFA_FLAVOUR = "2b"
# Image modes that go into the PDF as they are (bilevel as CCITT G4, grey, RGB); others become RGB.
PDF_IMAGE_MODES = ("1", "L", "RGB")


def write(pages: Iterable[OcrPage], out: BinaryIO) -> None:
    """Write the document as a searchable PDF/A-2b. Every page needs its image."""
    fonts = MultiFontManager()  # chooses a font per word; shared so fonts are looked up once
    with tempfile.TemporaryDirectory(prefix="bulkocr-pdf-") as scratch:
        folder = Path(scratch)
        page_files = [_page_pdf(number, page, fonts, folder) for number, page in numbered(pages)]
        joined = folder / "joined.pdf"
        _join(page_files, joined)
        document_file = folder / "document.pdf"
        with pikepdf.open(joined) as document:
            document.docinfo["/Creator"] = f"bulkocr {__version__}"
            pikepdf.pdfa.save(document, document_file, PDFA_FLAVOUR)
        with document_file.open("rb") as finished:
            shutil.copyfileobj(finished, out)


def _page_pdf(number: int, page: OcrPage, fonts: MultiFontManager, folder: Path) -> Path:
    """One page as its own PDF file: the image, and the text layer beneath it."""
    image_file = _page_image(number, page, folder)
    page_file = folder / f"page-{number:06d}.pdf"
    text = page.text.model_copy(update={"dpi": page_dpi(page.text.width, page.text.height, page.text.dpi)})
    renderer = Fpdf2PdfRenderer(
        page=ocr_tree(text), dpi=text.dpi, multi_font_manager=fonts, invisible_text=True, image=image_file
    )
    renderer.render(page_file)
    image_file.unlink()
    return page_file


# PDF/A-2 (ISO 19005-2, 6.1.13) allows page sides of 3 to 14,400 user units (1/72 inch).
_MIN_SIDE_PT, _MAX_SIDE_PT = 3, 14_400


def page_dpi(width: int, height: int, dpi: int) -> int:
    """The dpi a page is laid out at: its scan's, unless that makes a side shorter than PDF/A's
    3 points (a tiny image) or longer than its 14,400 (a huge image at a low dpi); then the
    nearest dpi within the limits, so the page stays valid and keeps its proportions."""
    most = math.floor(min(width, height) * 72 / _MIN_SIDE_PT)
    least = math.ceil(max(width, height) * 72 / _MAX_SIDE_PT)
    if least > most:
        raise ValueError(f"a {width}x{height} pixel page cannot be a PDF/A page: its sides differ too much in length")
    return min(max(dpi, least), most)


def _page_image(number: int, page: OcrPage, folder: Path) -> Path:
    """The page image as a file for the renderer, checked against the OCR's page size."""
    if page.image is None:
        raise ValueError(f"page {number}: a searchable PDF needs the page image")
    image_file = folder / f"page-{number:06d}.image"
    with Image.open(io.BytesIO(page.image)) as image:
        if image.size != (page.text.width, page.text.height):
            raise ValueError(
                f"page {number}: the image is {image.width}x{image.height} pixels but its OCR boxes "
                f"are for {page.text.width}x{page.text.height}"
            )
        if image.mode in PDF_IMAGE_MODES and image.format in ("PNG", "JPEG"):
            image_file.write_bytes(page.image)  # fpdf2 takes these as they are
        else:
            image.convert("RGB").save(image_file, format="PNG", compress_level=1)
    return image_file


def _join(page_files: list[Path], joined: Path) -> None:
    """qpdf's page selection: it reads each page file as it copies it and keeps few open at once."""
    job = pikepdf.Job(["qpdf", "--empty", "--pages", *(str(path) for path in page_files), "--", str(joined)])
    job.run()
    if job.exit_code != 0:
        raise RuntimeError(f"qpdf could not join the pages (exit code {job.exit_code})")


def ocr_tree(text: PageText) -> OcrElement:
    """The page model as OCRmyPDF's OcrElement tree: page > paragraph per block > line > word."""
    page = OcrElement(ocr_class=OcrClass.PAGE, bbox=BoundingBox(0, 0, text.width, text.height), dpi=text.dpi)
    for block in text.blocks:
        lines = block_lines(block)
        if not lines:
            continue
        paragraph = OcrElement(ocr_class=OcrClass.PARAGRAPH, bbox=_bounding_box(block.box))
        for line, words in lines:
            line_element = OcrElement(ocr_class=OcrClass.LINE, bbox=_bounding_box(line.box))
            line_element.children = [
                OcrElement(
                    ocr_class=OcrClass.WORD, bbox=_bounding_box(word.box), text=word.text, confidence=word.confidence
                )
                for word in words
            ]
            paragraph.children.append(line_element)
        page.children.append(paragraph)
    return page


def _bounding_box(box: Box) -> BoundingBox:
    return BoundingBox(left=box.x0, top=box.y0, right=box.x1, bottom=box.y1)
