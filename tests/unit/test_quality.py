"""A page's quality signals, worked out from its OCR: what a curator sorts a batch by."""

from __future__ import annotations

from bulkocr.page_model import Block, Box, Line, PageQuality, PageText, Word

BOX = Box(x0=0, y0=0, x1=10, y1=10)


def page(*confidences: float, rotation: int = 0) -> PageText:
    words = [Word(text=f"w{index}", box=BOX, confidence=c) for index, c in enumerate(confidences)]
    lines = [Line(text=w.text, box=BOX, confidence=w.confidence, words=[w]) for w in words]
    return PageText(width=100, height=100, rotation=rotation, engine="null", blocks=[Block(box=BOX, lines=lines)])


def test_a_page_without_words_is_blank_with_no_confidence():
    assert PageQuality.of(page(rotation=90)) == PageQuality(words=0, rotation=90, blank=True)


def test_mean_low_percentile_and_doubtful_words():
    """20 words: the 10th percentile is the 2nd worst; words under 0.8 are doubtful."""
    confidences = [0.5, 0.6] + [0.9] * 17 + [1.0]
    quality = PageQuality.of(page(*confidences, rotation=180))
    assert quality.words == 20
    assert quality.mean_confidence == round(sum(confidences) / 20, 4)
    assert quality.low_confidence == 0.6
    assert quality.doubtful_words == 2
    assert (quality.rotation, quality.blank) == (180, False)


def test_a_short_page_reports_its_worst_word_as_the_low_percentile():
    assert PageQuality.of(page(0.99, 0.3, 0.95)).low_confidence == 0.3
