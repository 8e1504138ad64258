"""Detector and recogniser output as the page model's lines: boxes clipped to the page,
confidences held to 0..1 (shared by every engine)."""

from __future__ import annotations

from collections.abc import Sequence

from bulkocr.page_model import Box, Line, Word
from bulkocr_ocr_worker.reading_order import PlacedLine, Quad


def as_quad(points: Sequence[Sequence[float]]) -> Quad:
    a, b, c, d = ((float(x), float(y)) for x, y in points)
    return (a, b, c, d)


def clipped_confidence(score: float) -> float:
    """Engines report float32 scores that can stray a hair outside 0..1."""
    return min(1.0, max(0.0, float(score)))


def page_box(points: Sequence[Sequence[float]], size: tuple[int, int]) -> Box:
    """Bounding box of a polygon, clipped to the page: detector boxes are padded past its edges."""
    width, height = size
    box = Box.around([(float(x), float(y)) for x, y in points])
    return Box(
        x0=min(max(box.x0, 0), width),
        y0=min(max(box.y0, 0), height),
        x1=min(max(box.x1, 0), width),
        y1=min(max(box.y1, 0), height),
    )


def placed_line(
    quad: Sequence[Sequence[float]],
    text: str,
    score: float,
    words: Sequence[tuple[str, float, Sequence[Sequence[float]]]],
    size: tuple[int, int],
) -> PlacedLine:
    line = Line(
        text=text,
        box=page_box(quad, size),
        confidence=clipped_confidence(score),
        words=[
            Word(text=word, box=page_box(word_quad, size), confidence=clipped_confidence(word_score))
            for word, word_score, word_quad in words
        ],
    )
    return PlacedLine(line=line, quad=as_quad(quad))


PAGE_SIZED_SHARE = 0.9
"""A detected box at least this share of the image's width and of its height is not a line."""


def page_sized(quad: Quad, size: tuple[int, int]) -> bool:
    """Whether the box spans (nearly) the whole image: PP-OCR's detector answers a page with no
    ink (a blank verso, a flat scan) with one such box now and then, and its int8 version more
    often; read as a line it turned blank pages sideways."""
    xs, ys = [x for x, _ in quad], [y for _, y in quad]
    width, height = size
    return max(xs) - min(xs) >= PAGE_SIZED_SHARE * width and max(ys) - min(ys) >= PAGE_SIZED_SHARE * height
