"""Which engine reads a page: the one the job asked for if it reads the page's script, else
Tesseract with the language's model, else none, and the page fails saying so.

PP-OCRv6 (rapidocr, paddle) reads Latin scripts, Chinese and Japanese. Given Cyrillic or
Arabic it returns confident garbage (on the Russian test page: punctuation and spaces at a
mean line confidence of 0.85), so the script must be known before reading, not judged after:

* a job that names its languages is read by an engine for all of their scripts;
* a job that names none has its documents' script detected by Tesseract's OSD (about 0.5-1 s
  a 300-dpi page) and read as that script's commonest language (bulkocr.languages). A
  confident call is kept for the rest of the document's pages this process reads: a
  document is in one script far more often than not, and OSD on every page would add a
  fifth to a third to each page's time;
* a page whose script no installed engine reads fails with that cause (`ScriptUnsupported`,
  a page fault: retrying cannot help).

docs/design-notes.md says why detection comes first rather than a check of PP-OCR's output.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from PIL import Image

from bulkocr.languages import LANGUAGES, SCRIPT_LANGUAGE, UnknownLanguage, parse_languages
from bulkocr_ocr_worker.engines import EngineUnavailableError, OcrEngine
from bulkocr_ocr_worker.engines.tesseract import PageScript, ScriptDetector, debian_packs

PP_OCR_SCRIPTS = frozenset({"Latin", "Han", "Japanese"})
ENGINE_SCRIPTS: dict[str, frozenset[str]] = {"rapidocr": PP_OCR_SCRIPTS, "paddle": PP_OCR_SCRIPTS}
"""What the script-bound engines read. Engines not named here are not routed away from: the
null engine reads nothing, and Tesseract is asked which language models it has."""
FALLBACK = "tesseract"
DOCUMENTS_REMEMBERED = 1024
"""Documents whose script a process keeps (the oldest is forgotten first); a process reads
pages of a few documents at a time, so this only bounds memory."""
MIN_SCRIPT_CONFIDENCE = 0.5
"""OSD's script calls below this are taken as "cannot tell": on sparse pages it named a few
lines of Latin print Japanese (0.06) and Fraktur (0.09), while full pages score 0.9-75."""
MIN_ORIENTATION_CONFIDENCE = 5.0
"""OSD's orientation is used from this confidence, sparing the engine its own check (0.2 s).
On 34 test pages it agreed with PP-OCR's check at 9.6-38 on Latin, Cyrillic and Greek
print. On two turned Arabic pages it scored 4.7 and 5.1 and was right where PP-OCR's check
was wrong; two sparse pages scored 1.1 and 1.5."""


class ScriptUnsupported(EngineUnavailableError):
    """No engine on this worker reads the page's script (or its job's language)."""


@runtime_checkable
class LanguageModels(Protocol):
    """An engine whose languages are the models installed with it (Tesseract)."""

    def reads(self, language: str) -> bool:
        """Whether it has the model for this ISO 639-3 code."""
        ...


Detect = Callable[[Image.Image], PageScript | None]


@dataclass(frozen=True)
class Route:
    engine: str
    language: str | None
    """ISO 639-3 codes, comma-separated, for the engine's `recognize`."""
    detected: PageScript | None = None
    rotation: int | None = None
    """How far to turn this page clockwise, where detecting its script settled it (else the
    engine finds it)."""


class Router:
    """Routes the pages of one pool process; `engine(name)` builds or returns its engines."""

    def __init__(self, engine: Callable[[str], OcrEngine], *, detector: Callable[[], Detect] | None = None) -> None:
        """`detector` builds the script detection (Tesseract's OSD unless a test gives another)."""
        self._engine = engine
        self._new_detector = detector or (lambda: ScriptDetector().detect)
        self._detector: Detect | EngineUnavailableError | None = None
        self._scripts: OrderedDict[str, PageScript] = OrderedDict()

    def route(self, requested: str, language: str | None, image: Image.Image, *, document: str | None = None) -> Route:
        """The engine and languages for this page; `document` (job/doc) lets a script
        detected on one of its pages stand for the others."""
        try:
            codes = parse_languages(language)
        except UnknownLanguage as unknown:  # a message from before the gateway checked codes
            raise ScriptUnsupported(str(unknown)) from None
        if codes:
            return self._named(requested, codes)
        if requested in ENGINE_SCRIPTS or requested == FALLBACK:
            return self._detected(requested, image, document)
        return Route(requested, None)

    def _named(self, requested: str, codes: tuple[str, ...]) -> Route:
        language = ",".join(codes)
        reads = ENGINE_SCRIPTS.get(requested)
        if reads is None or all(LANGUAGES[code].script in reads for code in codes):
            return Route(requested, language)
        unread = [code for code in codes if LANGUAGES[code].script not in reads]
        why = f"{requested} does not read {_scripts(unread)}"
        self._tesseract_for(codes, why)
        return Route(FALLBACK, language)

    def _detected(self, requested: str, image: Image.Image, document: str | None) -> Route:
        found = self._known(document)
        if found is not None:
            return self._for_script(requested, found)  # its rotation is another page's
        found = self._detect(image)
        if document is not None and found is not None and found.confidence >= MIN_SCRIPT_CONFIDENCE:
            self._remember(document, found)
        route = self._for_script(requested, found)
        if found is not None and found.orientation_confidence >= MIN_ORIENTATION_CONFIDENCE:
            # OSD has said which way up this page is: turning it needs no second look.
            return replace(route, rotation=found.rotation)
        return route

    def _for_script(self, requested: str, found: PageScript | None) -> Route:
        if found is None or found.confidence < MIN_SCRIPT_CONFIDENCE:
            # Too little text to tell (a blank page, a picture): what little there is is read as asked.
            return Route(requested, None, found)
        code = SCRIPT_LANGUAGE.get(found.script)
        if requested == FALLBACK:
            return Route(FALLBACK, code if code and self._tesseract().reads(code) else None, found)
        if found.script in ENGINE_SCRIPTS[requested]:
            return Route(requested, None, found)
        why = (
            f"the job names no language; the page's script looks {found.script} (Tesseract OSD), "
            f"which {requested} does not read"
        )
        if code is None:
            raise ScriptUnsupported(f"{why}, and no engine here reads it")
        self._tesseract_for((code,), why)
        return Route(FALLBACK, code, found)

    def _known(self, document: str | None) -> PageScript | None:
        if document is None or document not in self._scripts:
            return None
        self._scripts.move_to_end(document)
        return self._scripts[document]

    def _remember(self, document: str, found: PageScript) -> None:
        self._scripts[document] = found
        self._scripts.move_to_end(document)
        while len(self._scripts) > DOCUMENTS_REMEMBERED:
            self._scripts.popitem(last=False)

    def _detect(self, image: Image.Image) -> PageScript | None:
        if self._detector is None:
            try:
                self._detector = self._new_detector()
            except EngineUnavailableError as error:
                self._detector = error
        if isinstance(self._detector, EngineUnavailableError):
            raise ScriptUnsupported(
                f"the job names no language and this worker cannot detect the page's script ({self._detector}): "
                "name the job's language (ISO 639-3)"
            )
        return self._detector(image)

    def _tesseract(self) -> LanguageModels:
        engine = self._engine(FALLBACK)
        if not isinstance(engine, LanguageModels):
            raise EngineUnavailableError(f"the engine registered as {FALLBACK!r} does not say which languages it reads")
        return engine

    def _tesseract_for(self, codes: tuple[str, ...], why: str) -> None:
        """Tesseract reads these languages here, or the page fails with `why` and what is missing."""
        try:
            tesseract = self._tesseract()
        except EngineUnavailableError as error:
            raise ScriptUnsupported(f"{why}, and Tesseract is not available here: {error}") from None
        missing = [code for code in codes if not tesseract.reads(code)]
        if missing:
            raise ScriptUnsupported(
                f"{why}, and Tesseract has no model for {', '.join(missing)} here ({debian_packs(missing)})"
            )


def _scripts(codes: list[str]) -> str:
    named = dict.fromkeys(f"{LANGUAGES[code].script} ({code})" for code in codes)
    return ", ".join(named)
