"""Languages by ISO 639-3 code, and which engine a page goes to (pure: fakes stand in for
the engines and for Tesseract's script detection)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image

from bulkocr.languages import LANGUAGES, SCRIPT_LANGUAGE, UnknownLanguage, canonical_languages, parse_languages
from bulkocr_ocr_worker.engines import EngineUnavailableError, NullEngine, OcrEngine
from bulkocr_ocr_worker.engines.tesseract import PageScript
from bulkocr_ocr_worker.routing import Route, Router, ScriptUnsupported

PAGE = Image.new("L", (10, 10), 255)


class FakeTesseract(NullEngine):
    """Reads nothing, but has the language models it is given."""

    def __init__(self, models: set[str]) -> None:
        super().__init__()
        self.models = models

    def reads(self, language: str) -> bool:
        return language in self.models


def router(models: set[str] | None, script: PageScript | None = None) -> Router:
    """A router whose Tesseract has these models (None: Tesseract is not installed) and whose
    script detection says `script`."""

    def engine(name: str) -> OcrEngine:
        if name != "tesseract":
            return NullEngine()
        if models is None:
            raise EngineUnavailableError("tesserocr is not installed")
        return FakeTesseract(models)

    return Router(engine, detector=lambda: lambda image: script)


def test_codes_are_iso_639_3_in_order_once_each():
    assert parse_languages("rus, ELL+ara eng rus") == ("rus", "ell", "ara", "eng")
    assert parse_languages("ru,el,he") == ("rus", "ell", "heb")  # ISO 639-1 from older clients
    assert parse_languages(None) == parse_languages(" ") == ()
    assert canonical_languages("fr+en") == "fra,eng"
    assert canonical_languages("") is None


def test_an_unknown_code_says_how_languages_are_named():
    with pytest.raises(UnknownLanguage, match=r"'klingon'.*ISO 639-3"):
        parse_languages("eng,klingon")


def test_every_script_has_a_language_to_read_it_as():
    assert {language.script for language in LANGUAGES.values()} == set(SCRIPT_LANGUAGE)
    assert all(LANGUAGES[code].script == script for script, code in SCRIPT_LANGUAGE.items())


def test_a_job_in_a_latin_or_cjk_language_stays_on_pp_ocr():
    assert router({"rus"}).route("rapidocr", "eng,fra", PAGE) == Route("rapidocr", "eng,fra")
    assert router({"rus"}).route("rapidocr", "jpn", PAGE) == Route("rapidocr", "jpn")


def test_a_job_in_a_script_pp_ocr_does_not_read_goes_to_tesseract():
    """Any language of the job outside PP-OCRv6's scripts sends the whole page to Tesseract
    with all of the job's languages (a Russian page quoting English is read `rus+eng`)."""
    assert router({"rus", "eng"}).route("rapidocr", "rus,eng", PAGE) == Route("tesseract", "rus,eng")
    assert router({"ell"}).route("paddle", "el", PAGE) == Route("tesseract", "ell")


def test_a_job_in_a_language_no_installed_engine_reads_fails_saying_what_is_missing():
    with pytest.raises(ScriptUnsupported, match=r"rapidocr does not read Hebrew \(heb\).*tesseract-ocr-heb"):
        router({"rus"}).route("rapidocr", "heb", PAGE)
    with pytest.raises(ScriptUnsupported, match="Tesseract is not available here: tesserocr is not installed"):
        router(None).route("rapidocr", "ara", PAGE)


def test_a_page_of_a_job_without_a_language_goes_to_the_engine_for_its_detected_script():
    cyrillic = PageScript(rotation=0, script="Cyrillic", confidence=4.5)
    latin = PageScript(rotation=180, script="Latin", confidence=3.0)
    assert router({"rus"}, cyrillic).route("rapidocr", None, PAGE) == Route("tesseract", "rus", cyrillic)
    assert router({"rus"}, latin).route("rapidocr", None, PAGE) == Route("rapidocr", None, latin)
    assert router({"eng"}, cyrillic).route("tesseract", None, PAGE) == Route("tesseract", None, cyrillic)


def test_a_page_whose_script_cannot_be_told_is_read_by_the_engine_asked_for():
    """A blank page, a picture, or a low-confidence call: nothing to route on."""
    unsure = PageScript(rotation=0, script="Japanese", confidence=0.06)
    assert router({"rus"}, None).route("rapidocr", None, PAGE) == Route("rapidocr", None)
    assert router({"rus"}, unsure).route("rapidocr", None, PAGE) == Route("rapidocr", None, unsure)


def test_a_page_in_a_detected_script_no_engine_reads_fails_saying_why():
    arabic = PageScript(rotation=0, script="Arabic", confidence=65.0)
    with pytest.raises(ScriptUnsupported, match=r"names no language.*looks Arabic.*tesseract-ocr-ara"):
        router({"rus"}, arabic).route("rapidocr", None, PAGE)
    with pytest.raises(ScriptUnsupported, match="no engine here reads it"):
        router({"rus"}, PageScript(rotation=0, script="Thai", confidence=9.0)).route("rapidocr", None, PAGE)


def test_without_script_detection_a_page_of_a_job_without_a_language_fails_saying_why():
    def no_osd() -> Callable[[Image.Image], PageScript | None]:
        raise EngineUnavailableError("no osd model")  # as when tesseract-ocr-osd is missing

    routed = Router(lambda name: NullEngine(), detector=no_osd)
    with pytest.raises(ScriptUnsupported, match=r"cannot detect the page's script \(no osd model\).*name the job's"):
        routed.route("rapidocr", None, PAGE)


def test_the_null_engine_is_never_routed():
    assert router(None).route("null", None, PAGE) == Route("null", None)
    assert router(None).route("null", "ara", PAGE) == Route("null", "ara")


def test_a_documents_script_is_detected_once_and_kept_for_its_other_pages():
    """OSD costs a fifth to a third of a page's time: a confident call on one page of a
    document stands for its other pages; an unsure one (a blank cover) is not kept."""
    calls: list[str] = []
    answers = iter([PageScript(0, "Latin", 0.1), PageScript(0, "Cyrillic", 4.5), PageScript(0, "Latin", 3.0)])

    def detect(image: Image.Image) -> PageScript | None:
        calls.append("osd")
        return next(answers)

    routed = Router(
        lambda name: FakeTesseract({"rus"}) if name == "tesseract" else NullEngine(), detector=lambda: detect
    )
    assert routed.route("rapidocr", None, PAGE, document="j/d0001").engine == "rapidocr"  # unsure cover
    assert routed.route("rapidocr", None, PAGE, document="j/d0001").engine == "tesseract"
    assert routed.route("rapidocr", None, PAGE, document="j/d0001").engine == "tesseract"
    assert routed.route("rapidocr", None, PAGE, document="j/d0002").engine == "rapidocr"
    assert len(calls) == 3


def test_a_page_whose_script_was_detected_is_turned_as_osd_says_when_it_is_sure():
    """Detecting the script also says which way up the page is: a sure answer spares the
    engine its own look (0.2 s); an unsure one, or another page's, is not used."""
    answers = iter([PageScript(90, "Latin", 3.0, orientation_confidence=20.0), PageScript(180, "Latin", 3.0, 2.0)])
    routed = Router(lambda name: NullEngine(), detector=lambda: lambda image: next(answers))
    assert routed.route("rapidocr", None, PAGE, document="j/d0001").rotation == 90
    assert routed.route("rapidocr", None, PAGE, document="j/d0001").rotation is None  # the first page's answer
    assert routed.route("rapidocr", None, PAGE, document="j/d0002").rotation is None  # unsure
    assert router({"rus"}).route("rapidocr", "rus", PAGE).rotation is None  # named: nothing detected
