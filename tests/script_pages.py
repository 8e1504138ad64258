"""Scan-like test pages in scripts PP-OCRv6 does not read (Cyrillic, Greek, Arabic), with their text.

Each page is set in a Debian font (DejaVu Sans for Cyrillic and Greek, Noto Naskh Arabic for
Arabic, shaped right to left by Pillow's raqm layout) at 11 pt and 300 dpi, then made to look
scanned: turned by a fraction of a degree, blurred a little, given grey paper, grain and
specks. The texts are written for these tests (plain sentences about archives).
"""

# ruff: noqa: RUF001  # Cyrillic and Greek letters that look Latin are the point of these texts

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DPI = 300
POINT_SIZE = 11
MARGIN = 150
GRAIN_SIGMA = 12
SPECKS = 1 / 4000
"""Share of pixels set to near black or white (dust, paper fibres)."""

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NOTO_NASKH_ARABIC = Path("/usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf")


@dataclass(frozen=True)
class Script:
    name: str
    language: str
    """ISO 639-3 code of the text's language."""
    font: Path
    lines: tuple[str, ...]
    right_to_left: bool = False


RUSSIAN = Script(
    "Cyrillic",
    "rus",
    DEJAVU,
    (
        "Городской архив хранит письма, карты и газеты",
        "за последние двести лет. Многие документы были",
        "написаны от руки, другие напечатаны на машинке.",
        "В 1912 году библиотека получила собрание книг",
        "купца Петрова: более трёх тысяч томов по истории,",
        "географии и торговле северных губерний России.",
        "Сотрудники архива сканируют каждую страницу,",
        "чтобы читатели могли искать текст в каталоге.",
    ),
)

GREEK = Script(
    "Greek",
    "ell",
    DEJAVU,
    (
        "Το δημοτικό αρχείο φυλάσσει επιστολές, χάρτες",
        "και εφημερίδες των τελευταίων διακοσίων ετών.",
        "Πολλά έγγραφα γράφτηκαν με το χέρι, ενώ άλλα",
        "τυπώθηκαν σε γραφομηχανή. Το 1912 η βιβλιοθήκη",
        "απέκτησε τη συλλογή ενός εμπόρου από τη Θεσσαλονίκη",
        "με περισσότερους από τρεις χιλιάδες τόμους.",
        "Οι υπάλληλοι σαρώνουν κάθε σελίδα, ώστε οι",
        "αναγνώστες να βρίσκουν το κείμενο στον κατάλογο.",
    ),
)

ARABIC = Script(
    "Arabic",
    "ara",
    NOTO_NASKH_ARABIC,
    (
        "يحفظ أرشيف المدينة الرسائل والخرائط والصحف",
        "منذ مائتي عام. كتبت وثائق كثيرة باليد،",
        "وطبعت وثائق أخرى على الآلة الكاتبة.",
        "في عام 1912 حصلت المكتبة على مجموعة كتب",
        "تاجر من القاهرة فيها أكثر من ثلاثة آلاف مجلد",
        "في التاريخ والجغرافيا والتجارة.",
        "يقوم موظفو الأرشيف بمسح كل صفحة ضوئيا",
        "حتى يتمكن القراء من البحث في النص.",
    ),
    right_to_left=True,
)

SCRIPTS = (RUSSIAN, GREEK, ARABIC)


def truth(script: Script) -> str:
    return "\n".join(script.lines)


def render(script: Script, *, seed: int = 0, degrees: float = 0.4, width: int = 2480) -> Image.Image:
    """A greyscale page of the script's text at 300 dpi, lightly degraded like a scan (the same
    page for the same seed)."""
    size = round(POINT_SIZE * DPI / 72)
    font = ImageFont.truetype(str(script.font), size, layout_engine=ImageFont.Layout.RAQM)
    spacing = round(size * 1.6)
    height = 2 * MARGIN + spacing * len(script.lines)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(script.lines):
        y = MARGIN + index * spacing
        if script.right_to_left:
            draw.text((width - MARGIN, y), line, font=font, fill=0, anchor="ra", direction="rtl")
        else:
            draw.text((MARGIN, y), line, font=font, fill=0)
    return _scanned(page, random.Random(seed), degrees)


def _scanned(page: Image.Image, rng: random.Random, degrees: float) -> Image.Image:
    """Turned slightly, softened, on grey paper with grain and a few specks of dust."""
    page = page.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=255)
    page = page.filter(ImageFilter.GaussianBlur(0.7))
    page = page.point(lambda value: 30 + value * (235 - 30) // 255)  # ink is not black, paper not white
    random = numpy.random.default_rng(rng.randrange(2**32))
    pixels = numpy.asarray(page, dtype=numpy.float32) + random.normal(0, GRAIN_SIGMA, (page.height, page.width))
    specks = random.random((page.height, page.width)) < SPECKS
    pixels[specks] = random.choice([20.0, 250.0], size=int(specks.sum()))
    return Image.fromarray(numpy.clip(pixels, 0, 255).astype(numpy.uint8))
