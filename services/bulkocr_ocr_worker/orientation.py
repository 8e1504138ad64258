"""Page orientation (0/90/180/270) found before recognition, with the OCR engine's own models.

PP-OCR reads pages turned by 180° or 270° as garbage, and its per-line 0/180 classifier costs
accuracy on upright pages, so the whole page is turned upright first. The check is cheap:

1. run the text detector on a small copy of the page: if most of the text length lies in tall
   boxes, the lines run vertically and the page is at 90° or 270°, otherwise at 0° or 180°;
2. cut a few of the longest lines out of the full-size page and recognise each one turned
   both ways; the direction in which the recogniser is more confident wins.

Recognising upside-down Latin text gives mean confidences near 0.4-0.7 against 0.95-1.0
upright, so three lines usually settle it; more are read only when the margin is thin.
This needs no Tesseract, no extra model and no Debian package. Where Tesseract's script
detection has already looked at the page (the first page of each document of a job that
names no language) and is sure which way up it is, its answer is taken instead (routing.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

from bulkocr_ocr_worker.reading_order import Point, Quad

ROTATIONS = (0, 90, 180, 270)

DETECTION_LONG_SIDE = 800
"""Long side of the copy the detector sees. At 640 the 2-column letter pages still split into
lines, so 800 leaves room for smaller print while costing about 0.15-0.2 s on one core."""
MIN_SAMPLE_ASPECT = 3.0
"""Only boxes this elongated are sampled: single glyphs, logos and pictures say little about direction."""
MAX_SAMPLE_ASPECT = 12.0
"""Longer lines are read only in their middle part (about 20 characters): recognition time
grows with line length, and a few words already show which way up the text is."""
FIRST_SAMPLES = 3
MAX_SAMPLES = 8
CLEAR_MARGIN = 0.2
"""Mean-confidence lead that ends sampling early."""

# Image.transpose operations that turn an image clockwise by the key in degrees.
_TURN_CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@runtime_checkable
class TextLineReader(Protocol):
    """What orientation detection needs from an engine: its line detector and line recogniser."""

    def find_text_lines(self, image: Image.Image) -> list[Quad]:
        """Quadrilaterals of the text lines in the image, in its pixel coordinates (no recognition)."""
        ...

    def read_text_line(self, image: Image.Image) -> tuple[str, float]:
        """Text and confidence (0..1) of an image holding one horizontal line."""
        ...


@dataclass(frozen=True)
class Orientation:
    """How to turn a page so that its text reads upright."""

    rotation: int
    """Degrees to turn the image clockwise (0, 90, 180 or 270)."""
    margin: float
    """Lead of the winning direction's mean line confidence over the runner-up (0 when nothing was read)."""
    sampled_lines: int


def greyscale_or_rgb(image: Image.Image) -> Image.Image:
    """The image in a mode the models read: palette and bilevel scans would otherwise be
    resampled as raw palette indices."""
    return image if image.mode in ("L", "RGB") else image.convert("RGB")


def turn_clockwise(image: Image.Image, rotation: int) -> Image.Image:
    """The image turned clockwise by a multiple of 90 degrees (exact: no resampling)."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, not {rotation}")
    return image.transpose(_TURN_CLOCKWISE[rotation]) if rotation else image


def find_orientation(reader: TextLineReader, image: Image.Image) -> Orientation:
    """Find how to turn the page upright, using the engine's detector on a small copy and its
    recogniser on a few lines of the full-size page."""
    image = greyscale_or_rgb(image)
    scale = min(1.0, DETECTION_LONG_SIDE / max(image.size))
    small = (
        image
        if scale == 1.0
        else image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    )
    quads = [_scaled(quad, 1 / scale) for quad in reader.find_text_lines(small)]
    if not quads:
        return Orientation(rotation=0, margin=0.0, sampled_lines=0)

    candidates = (90, 270) if _mostly_vertical(quads) else (0, 180)
    samples = _longest_lines(quads)[:MAX_SAMPLES]
    scores: dict[int, list[float]] = {rotation: [] for rotation in candidates}
    for count, quad in enumerate(samples, start=1):
        line = _cut_out(image, quad)
        for rotation in candidates:
            _, confidence = reader.read_text_line(turn_clockwise(line, rotation))
            scores[rotation].append(confidence)
        if count >= FIRST_SAMPLES and _margin(scores) >= CLEAR_MARGIN:
            break

    ranked = sorted(candidates, key=lambda rotation: statistics.fmean(scores[rotation]), reverse=True)
    return Orientation(rotation=ranked[0], margin=_margin(scores), sampled_lines=len(scores[ranked[0]]))


def _scaled(quad: Quad, factor: float) -> Quad:
    a, b, c, d = ((x * factor, y * factor) for x, y in quad)
    return (a, b, c, d)


def _sides(quad: Quad) -> tuple[float, float]:
    """Width (along the top edge) and height (along the right edge) of a quad."""
    top_left, top_right, bottom_right, _ = quad
    return math.dist(top_left, top_right), math.dist(top_right, bottom_right)


def _mostly_vertical(quads: Sequence[Quad]) -> bool:
    """True when more text length lies in tall boxes than in wide ones."""
    tall = wide = 0.0
    for quad in quads:
        width, height = _sides(quad)
        if height > width:
            tall += height
        else:
            wide += width
    return tall > wide


def _longest_lines(quads: Sequence[Quad]) -> list[Quad]:
    """Elongated boxes, longest first; every box if none is elongated."""

    def long_side(quad: Quad) -> float:
        return max(_sides(quad))

    def is_elongated(quad: Quad) -> bool:
        width, height = _sides(quad)
        return max(width, height) >= MIN_SAMPLE_ASPECT * max(min(width, height), 1.0)

    elongated = [quad for quad in quads if is_elongated(quad)]
    return sorted(elongated or quads, key=long_side, reverse=True)


def _cut_out(image: Image.Image, quad: Quad) -> Image.Image:
    """The middle of the quad's content as an upright rectangle. It follows the box's tilt, so a
    skewed long line does not pick up its neighbours."""
    width, height = _sides(quad)
    top_left, top_right, bottom_right, bottom_left = quad
    if width >= height:
        keep = min(1.0, MAX_SAMPLE_ASPECT * height / max(width, 1.0))
        top_left, top_right = _middle(top_left, top_right, keep)
        bottom_left, bottom_right = _middle(bottom_left, bottom_right, keep)
        width *= keep
    else:
        keep = min(1.0, MAX_SAMPLE_ASPECT * width / max(height, 1.0))
        top_left, bottom_left = _middle(top_left, bottom_left, keep)
        top_right, bottom_right = _middle(top_right, bottom_right, keep)
        height *= keep
    # PIL's QUAD data lists the source corners as upper-left, lower-left, lower-right, upper-right.
    corners = (*top_left, *bottom_left, *bottom_right, *top_right)
    return image.transform(
        (max(1, round(width)), max(1, round(height))),
        Image.Transform.QUAD,
        corners,
        Image.Resampling.BILINEAR,
    )


def _middle(start: Point, end: Point, keep: float) -> tuple[Point, Point]:
    """The middle `keep` share of the segment from start to end."""
    lead = (1.0 - keep) / 2
    dx, dy = end[0] - start[0], end[1] - start[1]
    return (
        (start[0] + dx * lead, start[1] + dy * lead),
        (start[0] + dx * (lead + keep), start[1] + dy * (lead + keep)),
    )


def _margin(scores: dict[int, list[float]]) -> float:
    means = sorted((statistics.fmean(values) for values in scores.values() if values), reverse=True)
    return means[0] - means[1] if len(means) > 1 else 0.0
