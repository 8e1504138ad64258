"""Tesseract 5 (LSTM) for the scripts PP-OCRv6 does not read: Cyrillic, Greek, Arabic, Hebrew,
Devanagari and the others Debian has language packs for.

Through tesserocr, which binds libtesseract in-process (its wheel bundles the library): no
process per page, and words come with boxes and confidences from the result iterator rather
than from parsed TSV. The models are Debian's (`tesseract-ocr-rus`, `-ell`, `-ara`, ...,
`tesseract-ocr-osd` for orientation and script), found in `TESSDATA_PREFIX` or Debian's
folder; no package registry ships PP-OCR recognition models for these scripts (see
docs/design-notes.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PIL import Image

from bulkocr.languages import LANGUAGES, UnknownLanguage, parse_languages, script_name
from bulkocr.page_model import Box, Line, PageText, Word
from bulkocr_ocr_worker.engines.base import EngineUnavailableError
from bulkocr_ocr_worker.engines.lines import clipped_confidence, page_box
from bulkocr_ocr_worker.orientation import greyscale_or_rgb
from bulkocr_ocr_worker.reading_order import PlacedLine, order_lines

if TYPE_CHECKING:
    from tesserocr import PSM, PyTessBaseAPI

DEBIAN_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
OSD_MODEL = "osd"
MAX_LOADED_MODEL_SETS = 4
"""Language sets (`rus`, `rus+eng`, ...) a process keeps loaded at once."""
OSD_MAX_SIDE = 3600
"""Longer pages are shrunk for OSD (a tall A4 page at 300 dpi is 3508 pixels)."""
# Tesseract's TSV: level, page, block, paragraph, line, word, left, top, width, height, conf, text.
TSV_FIELDS = 12
TSV_WORD_LEVEL = "5"


@dataclass(frozen=True)
class PageScript:
    """What Tesseract's orientation and script detection says of a page."""

    rotation: int
    """Degrees to turn the image clockwise to make it upright."""
    script: str
    """As bulkocr.languages names scripts (Latin, Cyrillic, Greek, Arabic, ...)."""
    confidence: float
    """OSD's own script confidence (not a probability; about 2 or more is a clear call)."""
    orientation_confidence: float = 0.0
    """OSD's own confidence in `rotation`, on the same scale."""


def _check_tesserocr() -> None:
    """tesserocr is imported where it is used (so this module loads without the `ocr` extra)."""
    try:
        import tesserocr  # noqa: F401  # only whether it imports
    except ImportError as error:
        raise EngineUnavailableError("tesserocr is not installed: install bulkocr with the `ocr` extra") from error


def tessdata_dir(tessdata: str | Path | None = None) -> Path:
    """Where the Tesseract models are: given, else `TESSDATA_PREFIX`, else Debian's folder.
    (tesserocr's bundled library would otherwise look in the working directory.)"""
    return Path(tessdata or os.environ.get("TESSDATA_PREFIX") or DEBIAN_TESSDATA)


def debian_packs(codes: list[str]) -> str:
    """The Debian packages with Tesseract's models for these ISO 639-3 codes."""
    return ", ".join(
        f"tesseract-ocr-{LANGUAGES[code].tesseract.replace('_', '-')}" for code in codes if code in LANGUAGES
    )


def installed_models(tessdata: Path) -> frozenset[str]:
    """Names of the `.traineddata` files in `tessdata` (eng, rus, osd, ...)."""
    return frozenset(path.stem for path in tessdata.glob("*.traineddata"))


@contextlib.contextmanager
def page_set(api: PyTessBaseAPI, image: Image.Image) -> Iterator[None]:
    """Tesseract holds the page for the block, then is cleared. It gets the pixels as they are
    and reads them without a copy, so they are kept until then. tesserocr's `SetImage` would
    write the page as a PNG for Leptonica to decode again, 0.1 s for a 300-dpi page (the same
    answers, docs/benchmarks.md)."""
    image = greyscale_or_rgb(image)
    pixels = image.tobytes()
    channels = len(image.getbands())  # "L": 1 byte a pixel, "RGB": 3
    # tesserocr's stub says `str`; its code takes bytes.
    api.SetImageBytes(pixels, image.width, image.height, channels, channels * image.width)  # type: ignore[arg-type]
    try:
        yield
    finally:
        api.Clear()


class ScriptDetector:
    """Tesseract's OSD (about 0.3-1 s for a 300-dpi page on one core): the page's script and
    which way up it is."""

    def __init__(self, *, tessdata: str | Path | None = None) -> None:
        _check_tesserocr()
        import tesserocr

        directory = tessdata_dir(tessdata)
        if OSD_MODEL not in installed_models(directory):
            raise EngineUnavailableError(
                f"Tesseract's orientation and script model is not in {directory} (Debian: tesseract-ocr-osd)"
            )
        self._api = tesserocr.PyTessBaseAPI(
            path=f"{directory}/", lang=OSD_MODEL, psm=cast("PSM", tesserocr.PSM.OSD_ONLY)
        )

    def detect(self, image: Image.Image) -> PageScript | None:
        """None when the page holds too little text to tell (blank pages, pictures)."""
        image = greyscale_or_rgb(image)
        if max(image.size) > OSD_MAX_SIDE:  # an 81-MP poster took 3.2 s; its letters survive halving
            image = image.reduce(-(-max(image.size) // OSD_MAX_SIDE))
        with page_set(self._api, image):
            found = self._api.DetectOrientationScript()
        if not found or not found.get("script_name"):
            return None
        # OSD gives the angle the text stands at, counter-clockwise; turning clockwise by the
        # rest of the circle puts it upright.
        rotation = (360 - int(found["orient_deg"])) % 360
        return PageScript(
            rotation, script_name(str(found["script_name"])), float(found["script_conf"]), float(found["orient_conf"])
        )


class TesseractEngine:
    """Tesseract 5 LSTM, one API object per language set, page segmentation left to Tesseract
    (its psm 3); lines and words with boxes and confidences, put in reading order as the
    other engines' are."""

    name = "tesseract"

    def __init__(self, *, tessdata: str | Path | None = None, default_language: str = "eng") -> None:
        _check_tesserocr()
        import tesserocr

        self._tessdata = tessdata_dir(tessdata)
        self.models = installed_models(self._tessdata) - {OSD_MODEL}
        if not self.models:
            raise EngineUnavailableError(
                f"no Tesseract language models in {self._tessdata} (Debian: tesseract-ocr and tesseract-ocr-LANG)"
            )
        self._default_language = default_language
        self._apis: dict[str, PyTessBaseAPI] = {}
        self._osd: ScriptDetector | None = None
        version = tesserocr.tesseract_version().split()[1]
        self.version = f"tesseract {version}"

    def reads(self, language: str) -> bool:
        """Whether the model for an ISO 639-3 code is installed."""
        known = LANGUAGES.get(language)
        return known is not None and known.tesseract in self.models

    def rotation(self, image: Image.Image) -> int:
        """From OSD; 0 where its model is missing or the page has too little text to tell."""
        if self._osd is None:
            try:
                self._osd = ScriptDetector(tessdata=self._tessdata)
            except EngineUnavailableError:
                return 0
        found = self._osd.detect(image)
        return found.rotation if found is not None else 0

    def recognize(self, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
        api = self._api(self._model_names(language))
        with page_set(api, image):
            api.SetSourceResolution(dpi)
            api.Recognize()
            placed = self._lines(api, image.size)
        return PageText(
            width=image.width, height=image.height, dpi=dpi, engine=self.version, blocks=order_lines(placed)
        )

    def _model_names(self, language: str | None) -> str:
        """Tesseract's `rus+eng` for the job's `rus,eng` (checked at submission, so an unknown code
        came from elsewhere: the page's fault, not one a retry mends)."""
        try:
            codes = parse_languages(language or self._default_language)
        except UnknownLanguage as unknown:
            raise EngineUnavailableError(str(unknown)) from None
        missing = [code for code in codes if not self.reads(code)]
        if missing:
            raise EngineUnavailableError(
                f"Tesseract has no model for {', '.join(missing)} here ({debian_packs(missing)})"
            )
        if not codes:
            raise EngineUnavailableError("no language to read the page in")
        return "+".join(LANGUAGES[code].tesseract for code in codes)

    def _api(self, models: str) -> PyTessBaseAPI:
        import tesserocr

        if models not in self._apis:
            if len(self._apis) >= MAX_LOADED_MODEL_SETS:  # each holds its models (20-100 MB): drop the oldest
                self._apis.pop(next(iter(self._apis))).End()
            self._apis[models] = tesserocr.PyTessBaseAPI(
                path=f"{self._tessdata}/", lang=models, psm=cast("PSM", tesserocr.PSM.AUTO)
            )
        return self._apis[models]

    def _lines(self, api: PyTessBaseAPI, size: tuple[int, int]) -> list[PlacedLine]:
        """Tesseract's words grouped into its text lines, from its TSV rendering: that comes from
        its reading-order iterator, so Arabic and Hebrew words and their letters are in logical
        order (tesserocr's own iterator spells right-to-left words backwards)."""
        lines: dict[tuple[str, ...], list[Word]] = {}
        for row in api.GetTSVText(0).splitlines():
            fields = row.split("\t", 11)
            if len(fields) < TSV_FIELDS or fields[0] != TSV_WORD_LEVEL or not fields[11].strip():
                continue
            left, top, width, height = (int(value) for value in fields[6:10])
            word = Word(
                text=fields[11].strip(),
                box=page_box([(left, top), (left + width, top + height)], size),
                confidence=clipped_confidence(float(fields[10]) / 100),
            )
            lines.setdefault(tuple(fields[1:5]), []).append(word)  # page, block, paragraph, line
        return [_placed(words) for words in lines.values()]


def _placed(words: list[Word]) -> PlacedLine:
    box = Box.union([word.box for word in words])
    line = Line(
        text=" ".join(word.text for word in words),
        box=box,
        confidence=sum(word.confidence for word in words) / len(words),
        words=words,
    )
    quad = ((box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1))
    return PlacedLine(line=line, quad=quad)
