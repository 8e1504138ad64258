"""The languages a job may name, by ISO 639-3 code (as Archipelago's metadata names them), and
the script each is written in: the OCR worker picks the engine that reads that script.

A job's `language` option is a comma-separated list of codes, stored in ISO 639-3
(`"rus,eng"`). Two-letter ISO 639-1 codes are accepted at submission for older clients and
turned into their 639-3 form there, so every service after the gateway sees one spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    """ISO 639-3."""
    name: str
    script: str
    """As Tesseract's script detection (OSD) names it: Latin, Cyrillic, Greek, Arabic, ..."""
    tesseract: str
    """Name of Tesseract's model for it (Debian package tesseract-ocr-<name with _ as ->)."""


def _table(*rows: tuple[str, str, str, str, str]) -> tuple[dict[str, Language], dict[str, str]]:
    languages = {code: Language(code, name, script, tesseract) for code, _, name, script, tesseract in rows}
    two_letter = {alias: code for code, alias, _, _, _ in rows if alias}
    return languages, two_letter


# (ISO 639-3, ISO 639-1, name, script, Tesseract model). The languages of the archives bulkocr
# serves first; adding one is one row here and, for Tesseract, its Debian language pack.
LANGUAGES, _ISO_639_1 = _table(
    ("eng", "en", "English", "Latin", "eng"),
    ("fra", "fr", "French", "Latin", "fra"),
    ("deu", "de", "German", "Latin", "deu"),
    ("spa", "es", "Spanish", "Latin", "spa"),
    ("ita", "it", "Italian", "Latin", "ita"),
    ("nld", "nl", "Dutch", "Latin", "nld"),
    ("por", "pt", "Portuguese", "Latin", "por"),
    ("lat", "la", "Latin", "Latin", "lat"),
    ("pol", "pl", "Polish", "Latin", "pol"),
    ("ces", "cs", "Czech", "Latin", "ces"),
    ("swe", "sv", "Swedish", "Latin", "swe"),
    ("dan", "da", "Danish", "Latin", "dan"),
    ("fin", "fi", "Finnish", "Latin", "fin"),
    ("tur", "tr", "Turkish", "Latin", "tur"),
    ("rus", "ru", "Russian", "Cyrillic", "rus"),
    ("ukr", "uk", "Ukrainian", "Cyrillic", "ukr"),
    ("bul", "bg", "Bulgarian", "Cyrillic", "bul"),
    ("srp", "sr", "Serbian", "Cyrillic", "srp"),
    ("bel", "be", "Belarusian", "Cyrillic", "bel"),
    ("ell", "el", "Greek", "Greek", "ell"),
    ("grc", "", "Ancient Greek", "Greek", "grc"),
    ("ara", "ar", "Arabic", "Arabic", "ara"),
    ("fas", "fa", "Persian", "Arabic", "fas"),
    ("urd", "ur", "Urdu", "Arabic", "urd"),
    ("heb", "he", "Hebrew", "Hebrew", "heb"),
    ("yid", "yi", "Yiddish", "Hebrew", "yid"),
    ("hin", "hi", "Hindi", "Devanagari", "hin"),
    ("mar", "mr", "Marathi", "Devanagari", "mar"),
    ("nep", "ne", "Nepali", "Devanagari", "nep"),
    ("san", "sa", "Sanskrit", "Devanagari", "san"),
    ("zho", "zh", "Chinese", "Han", "chi_sim"),
    ("jpn", "ja", "Japanese", "Japanese", "jpn"),
    ("kor", "ko", "Korean", "Hangul", "kor"),
)

SCRIPT_LANGUAGE: dict[str, str] = {
    "Latin": "eng",
    "Cyrillic": "rus",
    "Greek": "ell",
    "Arabic": "ara",
    "Hebrew": "heb",
    "Devanagari": "hin",
    "Han": "zho",
    "Japanese": "jpn",
    "Hangul": "kor",
}
"""The language a page is read as when the job names none and its script was detected: the
commonest of that script in the collections served (a script-wide model would be better)."""

# Tesseract's OSD names some scripts more finely than the table does.
_SCRIPT_ALIASES = {
    "Fraktur": "Latin",
    "HanS": "Han",
    "HanT": "Han",
    "Katakana": "Japanese",
    "Hiragana": "Japanese",
    "Korean": "Hangul",
}

_SEPARATORS = re.compile(r"[\s,+]+")


class UnknownLanguage(ValueError):
    """A language code that is not ISO 639-3 (or 639-1) for a language bulkocr knows."""


def parse_languages(text: str | None) -> tuple[str, ...]:
    """The ISO 639-3 codes in `text` (separated by commas, `+` or spaces), in order, once each."""
    codes: dict[str, None] = {}
    for raw in _SEPARATORS.split((text or "").strip()):
        if not raw:
            continue
        code = raw.lower()
        code = _ISO_639_1.get(code, code)
        if code not in LANGUAGES:
            raise UnknownLanguage(
                f"unknown language code {raw!r}: name languages by ISO 639-3 code, e.g. eng, rus, ell, ara, heb, hin"
            )
        codes[code] = None
    return tuple(codes)


def canonical_languages(text: str | None) -> str | None:
    """`text` as the job option stores it (`"rus,eng"`), or None when it names none."""
    return ",".join(parse_languages(text)) or None


def script_name(osd_name: str) -> str:
    """A script as this module names it, from Tesseract OSD's name for it."""
    return _SCRIPT_ALIASES.get(osd_name, osd_name)
