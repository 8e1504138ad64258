"""The engine-neutral result of OCR on one page: blocks of lines of words, with boxes.

Every engine converts its own output into this model, and every output format (text,
hOCR, ALTO, MiniOCR, searchable PDF, JSON) is rendered from it. Coordinates are integer
pixels of the upright page image (after orientation correction), origin top left.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class Box(BaseModel):
    """An axis-aligned rectangle: left, top, right, bottom in page pixels (right/bottom exclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @classmethod
    def around(cls, points: list[tuple[float, float]]) -> Box:
        """The smallest box holding every point (for example an engine's quadrilateral)."""
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return cls(x0=int(min(xs)), y0=int(min(ys)), x1=round(max(xs)), y1=round(max(ys)))

    @classmethod
    def union(cls, boxes: list[Box]) -> Box:
        return cls(
            x0=min(b.x0 for b in boxes),
            y0=min(b.y0 for b in boxes),
            x1=max(b.x1 for b in boxes),
            y1=max(b.y1 for b in boxes),
        )


class Word(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    box: Box
    confidence: float = Field(ge=0.0, le=1.0)


class Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    box: Box
    confidence: float = Field(ge=0.0, le=1.0)
    words: list[Word] = Field(default_factory=list)


class Block(BaseModel):
    """A run of lines read together (a column, a paragraph): blocks come in reading order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    box: Box
    lines: list[Line]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class PageText(BaseModel):
    """OCR of one page in reading order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    dpi: int = Field(default=300, gt=0)
    rotation: int = Field(default=0, description="degrees the source image was turned clockwise to read it")
    engine: str
    blocks: list[Block] = Field(default_factory=list)

    @property
    def lines(self) -> list[Line]:
        return [line for block in self.blocks for line in block.lines]

    @property
    def text(self) -> str:
        """Plain text in reading order: lines joined by newlines, blocks by a blank line."""
        return "\n\n".join(block.text for block in self.blocks)


LOW_WORD_CONFIDENCE = 0.8
"""A word read with less confidence than this is marked for a curator to check."""


class PageQuality(BaseModel):
    """How trustworthy a page's OCR looks, so a curator checks the worst pages of a batch first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    words: int = Field(ge=0)
    mean_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    low_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="the 10th percentile of the words' confidences"
    )
    doubtful_words: int = Field(default=0, ge=0, description=f"words read with confidence under {LOW_WORD_CONFIDENCE}")
    rotation: int = 0
    blank: bool = Field(description="no word was found: an empty sheet, or a page the engine could not read")

    @classmethod
    def of(cls, page: PageText) -> PageQuality:
        confidences = sorted(word.confidence for line in page.lines for word in line.words)
        if not confidences:
            return cls(words=0, rotation=page.rotation, blank=True)
        # nearest-rank percentile: a page of three words reports its worst
        low = confidences[max(0, math.ceil(0.1 * len(confidences)) - 1)]
        return cls(
            words=len(confidences),
            mean_confidence=round(sum(confidences) / len(confidences), 4),
            low_confidence=round(low, 4),
            doubtful_words=sum(1 for confidence in confidences if confidence < LOW_WORD_CONFIDENCE),
            rotation=page.rotation,
            blank=False,
        )
