"""Reading order: group recognised lines into blocks (columns, paragraphs) in the order people read them.

Line-level engines such as PP-OCR return lines top to bottom across the whole page, which
interleaves the columns of a multi-column page. This module puts them back in order with a
recursive XY-cut over the line boxes:

* vertical whitespace channels that run through the whole region split it into columns,
  read left to right;
* otherwise the region is cut into horizontal strips, and consecutive strips that share a
  column gutter are kept together, so that aligned baselines in two columns never turn
  into "one row across both columns".

Scans are rarely straight, and on a page skewed by 2° a column's edge drifts by about a
line gap over the page height, which closes the gutter. The skew is therefore estimated
from the lines' own quadrilaterals and the cut runs on boxes rotated back by that angle.
Output boxes stay in page coordinates; only the cutting happens in the deskewed frame.

Everything here is pure: lines in, blocks out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bulkocr.page_model import Block, Box, Line

Point = tuple[float, float]
# Corners in reading direction: top-left, top-right, bottom-right, bottom-left.
Quad = tuple[Point, Point, Point, Point]

BOX_PADDING = 0.2
"""Share of a box's height trimmed from each side before cutting. DB-style detectors pad line
boxes well past the ink, so padded boxes of consecutive lines overlap and a heading can fuse
with the line below it; the trimmed cores keep the whitespace visible."""

# Thresholds are multiples of the page's median (trimmed) line height, so they hold at any dpi.
COLUMN_GAP_LINES = 1.0
"""Narrowest vertical whitespace channel that separates columns (linn.png's gutter is about 2)."""
MIN_COLUMN_WIDTH_LINES = 6.0
"""Narrowest column: keeps list bullets and numbers next to their text."""
PARAGRAPH_GAP_LINES = 1.2
"""Vertical gap between lines of one column that starts a new block (single spacing leaves about 0.6)."""
PARAGRAPH_GAP_SPACINGS = 1.5
"""...and at least this many times the run's usual gap, so double-spaced typescript stays one block."""
SAME_ROW_OVERLAP = 0.5
"""Vertical overlap (of the shorter line) at which two boxes sit on the same row."""
MAX_SKEW_DEGREES = 15.0
"""Steeper lines are not skew but rotated text (stamps, margin notes): ignored by the estimate."""
MIN_SKEW_ASPECT = 3.0
"""Only lines at least this many times longer than high give a usable angle."""


@dataclass(frozen=True)
class PlacedLine:
    """A recognised line and the quadrilateral the detector drew around it."""

    line: Line
    quad: Quad

    @classmethod
    def from_line(cls, line: Line) -> PlacedLine:
        """Use the axis-aligned box as the quadrilateral, for engines that report no angle."""
        box = line.box
        quad: Quad = ((box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1))
        return cls(line=line, quad=quad)


@dataclass(frozen=True)
class _Rect:
    """A line's box in the deskewed frame, carrying the index of the line it came from."""

    index: int
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class _Scale:
    """Thresholds in pixels for one page."""

    column_gap: float
    min_column_width: float
    paragraph_gap: float


def estimate_skew(quads: Sequence[Quad]) -> float:
    """Median angle in degrees of the long lines' top and bottom edges (positive: falling to the right).

    Returns 0.0 when no line is long enough to measure.
    """
    angles: list[float] = []
    for top_left, top_right, bottom_right, bottom_left in quads:
        width = math.dist(top_left, top_right)
        height = math.dist(top_right, bottom_right)
        if width < MIN_SKEW_ASPECT * max(height, 1.0):
            continue
        for start, end in ((top_left, top_right), (bottom_left, bottom_right)):
            angle = math.degrees(math.atan2(end[1] - start[1], end[0] - start[0]))
            if abs(angle) <= MAX_SKEW_DEGREES:
                angles.append(angle)
    return statistics.median(angles) if angles else 0.0


def order_lines(lines: Sequence[PlacedLine]) -> list[Block]:
    """Group lines into blocks in reading order; each block's lines are in reading order too."""
    if not lines:
        return []
    rects = _deskewed_rects(lines)
    line_height = statistics.median(rect.height for rect in rects)
    scale = _Scale(
        column_gap=COLUMN_GAP_LINES * line_height,
        min_column_width=MIN_COLUMN_WIDTH_LINES * line_height,
        paragraph_gap=PARAGRAPH_GAP_LINES * line_height,
    )
    groups = _cut(rects, scale)
    blocks: list[Block] = []
    for group in groups:
        block_lines = [lines[rect.index].line for rect in group]
        blocks.append(Block(box=Box.union([line.box for line in block_lines]), lines=block_lines))
    return blocks


def _deskewed_rects(lines: Sequence[PlacedLine]) -> list[_Rect]:
    """Rotate every quad back by the page skew and take the core of its bounding rectangle."""
    angle = math.radians(estimate_skew([placed.quad for placed in lines]))
    cos, sin = math.cos(angle), math.sin(angle)
    rects: list[_Rect] = []
    for index, placed in enumerate(lines):
        # Rotating by -angle about the origin: only relative positions matter for the cut.
        xs = [x * cos + y * sin for x, y in placed.quad]
        ys = [y * cos - x * sin for x, y in placed.quad]
        inset = BOX_PADDING * (max(ys) - min(ys))
        inset_x = min(inset, (max(xs) - min(xs)) / 4)  # a lone "|" or "." must not turn inside out
        rects.append(
            _Rect(index=index, x0=min(xs) + inset_x, y0=min(ys) + inset, x1=max(xs) - inset_x, y1=max(ys) - inset)
        )
    return rects


def _cut(rects: list[_Rect], scale: _Scale) -> list[list[_Rect]]:
    """Recursive XY-cut: columns first, then strips grouped by shared gutters, then paragraphs."""
    if len(rects) <= 1:
        return [rects] if rects else []
    columns = _split_columns(rects, scale)
    if len(columns) > 1:
        return [block for column in columns for block in _cut(column, scale)]

    blocks: list[list[_Rect]] = []
    running: list[list[_Rect]] = []  # consecutive strips without columns, read top to bottom
    for group in _group_strips(_split_strips(rects), scale):
        if len(group) < len(rects) and len(_split_columns(group, scale)) > 1:
            blocks.extend(_paragraphs(running, scale))
            running = []
            blocks.extend(_cut(group, scale))
        else:
            running.append(group)
    blocks.extend(_paragraphs(running, scale))
    return blocks


def _split_columns(rects: list[_Rect], scale: _Scale) -> list[list[_Rect]]:
    """Split at vertical whitespace channels that run through every line of the region."""
    by_left = sorted(rects, key=lambda rect: rect.x0)
    gaps: list[tuple[float, float]] = []
    reach = by_left[0].x1
    for rect in by_left[1:]:
        if rect.x0 - reach >= scale.column_gap:
            gaps.append((reach, rect.x0))
        reach = max(reach, rect.x1)

    # Keep only gaps that leave every column wide enough to hold running text.
    cuts: list[float] = []
    column_start = by_left[0].x0
    for gap_start, gap_end in gaps:
        if gap_start - column_start >= scale.min_column_width:
            cuts.append((gap_start + gap_end) / 2)
            column_start = gap_end
    if cuts and reach - column_start < scale.min_column_width:
        cuts.pop()  # the last column is too narrow: it stays with its left neighbour
    if not cuts:
        return [rects]

    columns: list[list[_Rect]] = [[] for _ in range(len(cuts) + 1)]
    for rect in rects:
        columns[sum(1 for cut in cuts if rect.x0 > cut)].append(rect)
    return columns


def _split_strips(rects: list[_Rect]) -> list[list[_Rect]]:
    """Split into horizontal strips at every gap that no line crosses, top to bottom."""
    by_top = sorted(rects, key=lambda rect: rect.y0)
    strips: list[list[_Rect]] = [[by_top[0]]]
    reach = by_top[0].y1
    for rect in by_top[1:]:
        if rect.y0 >= reach:
            strips.append([rect])
        else:
            strips[-1].append(rect)
        reach = max(reach, rect.y1)
    return strips


def _group_strips(strips: list[list[_Rect]], scale: _Scale) -> list[list[_Rect]]:
    """Merge consecutive strips while together they still split into columns.

    Two columns whose baselines line up make one strip per row; merging them back lets the
    column cut see the whole column. A strip that crosses the gutter (a heading over both
    columns) ends the run. When a run starts, the strips just above it that fit inside one of
    its columns join it too: text flowing beside a picture only becomes two-column where the
    picture's caption begins, and it must not be cut at that line.
    """
    groups: list[list[_Rect]] = []
    for strip in strips:
        if groups and len(_split_columns(groups[-1] + strip, scale)) > 1:
            groups[-1] = groups[-1] + strip
            while len(groups) > 1 and len(_split_columns(groups[-2] + groups[-1], scale)) > 1:
                last = groups.pop()
                groups[-1] = groups[-1] + last
        else:
            groups.append(list(strip))
    return groups


def _paragraphs(strips: list[list[_Rect]], scale: _Scale) -> list[list[_Rect]]:
    """Turn a run of column-free strips into blocks, starting a new one at unusually wide vertical gaps."""
    if not strips:
        return []
    tops = [min(rect.y0 for rect in strip) for strip in strips]
    bottoms = [max(rect.y1 for rect in strip) for strip in strips]
    gaps = [top - bottom for top, bottom in zip(tops[1:], bottoms, strict=False)]
    threshold = max(scale.paragraph_gap, PARAGRAPH_GAP_SPACINGS * statistics.median(gaps)) if gaps else math.inf
    blocks: list[list[_Rect]] = []
    for strip, gap in zip(strips, [0.0, *gaps], strict=True):
        if not blocks or gap > threshold:
            blocks.append([])
        blocks[-1].extend(_rows(strip))
    return blocks


def _rows(rects: list[_Rect]) -> list[_Rect]:
    """Order lines top to bottom, and left to right where boxes share a row."""
    rows: list[list[_Rect]] = []
    for rect in sorted(rects, key=lambda rect: (rect.y0 + rect.y1) / 2):
        if rows and _same_row(rows[-1], rect):
            rows[-1].append(rect)
        else:
            rows.append([rect])
    return [rect for row in rows for rect in sorted(row, key=lambda rect: rect.x0)]


def _same_row(row: list[_Rect], rect: _Rect) -> bool:
    top = min(other.y0 for other in row)
    bottom = max(other.y1 for other in row)
    overlap = min(bottom, rect.y1) - max(top, rect.y0)
    return overlap >= SAME_ROW_OVERLAP * min(rect.height, bottom - top)
