"""Tiled reading for big pages whose text the detector would see too small.

The text detector reads a copy of the page shrunk to its limit (1,280 px on the long side).
On an ordinary 300 dpi page that leaves lines about 17 px high, which it finds; on a
newspaper-sized sheet (5,100 x 6,600 px) the same text shrinks to about half that and about
one word in ten is never found. Such a page is read in overlapping tiles instead: each tile
is at most `tile_side` page pixels square, which the engine reads as it reads any page (the
detector sees it at its native size), and the tiles' lines are merged back into one page.

Which pages: only those whose long side exceeds `above_side` are looked at (every other page
keeps the one-pass path untouched), and of those only the ones whose median line height on
the detector's shrunk copy is under `min_text_px` are tiled. A 600 dpi letter page is as big
as the newspaper sheet but its text is twice as tall, so the page size alone cannot decide.

Merging, for lines found in more than one tile:

1. a line cut by a tile's top or bottom edge is dropped where another tile holds it uncut
   there (the overlap is many line heights, so every line is whole vertically somewhere);
2. a line cut by a tile's left or right edge is dropped where another tile holds it whole;
3. a line longer than the overlap is cut in every tile: its pieces (same row, neighbouring
   tiles, overlapping in the overlap) are joined; a word both pieces read (their word boxes
   overlap) is taken from the piece that holds it farther from its cut edge;
4. a line found twice (whole in an overlap, or joined in two rows of tiles that overlap
   there) is kept once.

Everything here but `read_tiled` is pure arithmetic on boxes; `read_tiled` takes the
engine's one-image reader as an argument.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

from bulkocr_ocr_worker.reading_order import Point, Quad

WordBox = tuple[str, float, Quad]
"""A recognised word: text, confidence and quadrilateral."""

COVERED = 0.5
"""Share of a line's box inside another line's box at which both are the same text."""
SAME_ROW_OVERLAP = 0.5
"""Vertical overlap (of the lower piece) at which two pieces of a cut line sit on one row."""
SAME_WORD_OVERLAP = 0.5
"""Horizontal overlap (of the narrower box) at which two pieces' words are one word read twice."""
EDGE_MARGIN_PX = 2.0
"""A box this close to a tile's inner edge is cut by it: the detector clips its boxes to the image."""
EDGE_MARGIN_LINES = 0.5
"""...and at the left and right, a box this many of its heights from the edge."""


@dataclass(frozen=True)
class TilingSettings:
    """When a page is read in tiles, and how big they are (page pixels)."""

    above_side: int = 4000
    min_text_px: float = 15.0
    tile_side: int = 3072
    overlap: int = 384

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.tile_side:
            raise ValueError(f"tile overlap must be at least 0 and below the tile side ({self.tile_side})")


@dataclass(frozen=True)
class Tile:
    """A rectangle of the page in page pixels (right and bottom exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class TextLine:
    """A recognised line in the coordinates of the image it was read from."""

    quad: Quad
    text: str
    score: float
    words: tuple[WordBox, ...] = ()

    def moved(self, dx: float, dy: float) -> TextLine:
        """The same line in coordinates shifted by (dx, dy): from a tile's to the page's."""
        return TextLine(
            quad=_moved(self.quad, dx, dy),
            text=self.text,
            score=self.score,
            words=tuple((text, score, _moved(quad, dx, dy)) for text, score, quad in self.words),
        )


@dataclass(frozen=True)
class _Rect:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return max(self.x1 - self.x0, 0.0) * max(self.y1 - self.y0, 0.0)

    def share_inside(self, other: _Rect) -> float:
        """Share of this rectangle's area that lies inside `other`."""
        width = min(self.x1, other.x1) - max(self.x0, other.x0)
        height = min(self.y1, other.y1) - max(self.y0, other.y0)
        if width <= 0 or height <= 0 or self.area == 0:
            return 0.0
        return width * height / self.area


@dataclass
class _Candidate:
    """A line as one tile saw it, with the tile edges that cut it."""

    line: TextLine
    tiles: frozenset[int]
    """The tiles it was read from: more than one once the pieces of a cut line are joined."""
    rect: _Rect
    cut: set[str] = field(default_factory=set)

    @property
    def whole_across(self) -> bool:
        return not self.cut & {"left", "right"}

    @property
    def whole_down(self) -> bool:
        return not self.cut & {"top", "bottom"}


def line_height(quad: Quad) -> float:
    """Height of a line's quadrilateral along its right edge."""
    return math.dist(quad[1], quad[2])


def tile_spans(length: int, side: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the fewest tiles at most `side` long that cover `length` with neighbours
    overlapping by at least `overlap`. The tiles share the length evenly, so they are only as big
    as they need to be: less text is read twice in overlaps."""
    if length <= side:
        return [(0, length)]
    count = math.ceil((length - overlap) / (side - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(index * (length - size) / (count - 1)) for index in range(count)]
    return [(start, start + size) for start in starts]


def tile_layout(width: int, height: int, settings: TilingSettings) -> list[Tile]:
    """Tiles covering the page, row by row."""
    side, overlap = settings.tile_side, settings.overlap
    return [
        Tile(x0=x0, y0=y0, x1=x1, y1=y1)
        for y0, y1 in tile_spans(height, side, overlap)
        for x0, x1 in tile_spans(width, side, overlap)
    ]


def plan_tiles(
    size: tuple[int, int], shrunk_pass: Sequence[Quad], detector_side: int, settings: TilingSettings
) -> list[Tile]:
    """Tiles for a page, or none when the one-pass read suits it.

    `shrunk_pass` holds the line quads the detector found on its shrunk copy (in page
    pixels); `detector_side` is the long side that copy had.
    """
    width, height = size
    long_side = max(width, height)
    if long_side <= settings.above_side or long_side <= settings.tile_side or not shrunk_pass:
        return []
    scale = min(1.0, detector_side / long_side)
    seen_height = statistics.median(line_height(quad) for quad in shrunk_pass) * scale
    if seen_height >= settings.min_text_px:
        return []
    return tile_layout(width, height, settings)


def read_tiled(
    image: Image.Image, tiles: Sequence[Tile], read_lines: Callable[[Image.Image], Sequence[TextLine]]
) -> list[TextLine]:
    """Read every tile with `read_lines` and merge the lines into page coordinates."""
    found: list[tuple[Tile, list[TextLine]]] = []
    for tile in tiles:
        lines = read_lines(image.crop((tile.x0, tile.y0, tile.x1, tile.y1)))
        found.append((tile, [line.moved(tile.x0, tile.y0) for line in lines]))
    return merge_tile_lines(found, image.size)


def merge_tile_lines(found: Sequence[tuple[Tile, Sequence[TextLine]]], size: tuple[int, int]) -> list[TextLine]:
    """One line per line of text from the lines of overlapping tiles (page coordinates), top to bottom."""
    candidates = [_candidate(line, index, tile, size) for index, (tile, lines) in enumerate(found) for line in lines]
    # 1. Pieces cut at the top or bottom give way to the tile that holds the line uncut there.
    candidates = [
        one for one in candidates if one.whole_down or not _covered(one, [o for o in candidates if o.whole_down])
    ]
    # 2. Pieces cut at the sides give way to a whole copy from another tile.
    wholes = [one for one in candidates if one.whole_across]
    pieces = [one for one in candidates if not one.whole_across and not _covered(one, wholes)]
    # 3. The rest are joined across the tile edges.
    joined = [_joined(chain) for chain in _chains(pieces)]
    # 4. A line seen twice (whole in an overlap, or joined in two rows of tiles) is kept once: the larger box wins.
    kept: list[_Candidate] = []
    for one in sorted(wholes + joined, key=lambda one: one.rect.area, reverse=True):
        if not _covered(one, kept):
            kept.append(one)
    return sorted(
        (one.line for one in kept), key=lambda line: (min(y for _, y in line.quad), min(x for x, _ in line.quad))
    )


def _candidate(line: TextLine, index: int, tile: Tile, size: tuple[int, int]) -> _Candidate:
    rect = _bounds(line.quad)
    width, height = size
    margin = _edge_margin(rect)
    cut = set()
    if tile.x0 > 0 and rect.x0 <= tile.x0 + margin:
        cut.add("left")
    if tile.x1 < width and rect.x1 >= tile.x1 - margin:
        cut.add("right")
    if tile.y0 > 0 and rect.y0 <= tile.y0 + EDGE_MARGIN_PX:
        cut.add("top")
    if tile.y1 < height and rect.y1 >= tile.y1 - 1 - EDGE_MARGIN_PX:
        cut.add("bottom")
    return _Candidate(line=line, tiles=frozenset({index}), rect=rect, cut=cut)


def _edge_margin(rect: _Rect) -> float:
    """How near a tile's left or right edge a line or word may end and still go on past it: the
    detector pads boxes by about half a line, so a gap between words can fall right at the edge."""
    return max(EDGE_MARGIN_PX, EDGE_MARGIN_LINES * (rect.y1 - rect.y0))


def _covered(one: _Candidate, others: Sequence[_Candidate]) -> bool:
    """Whether a line read from other tiles holds most of this one's box."""
    return any(not one.tiles & other.tiles and one.rect.share_inside(other.rect) >= COVERED for other in others)


def _chains(pieces: Sequence[_Candidate]) -> list[list[_Candidate]]:
    """Pieces of the same line, left to right: a piece cut on its right continues in the piece of
    a neighbouring tile that starts inside it on the same row and is cut on its left."""
    chains: list[list[_Candidate]] = []
    for piece in sorted(pieces, key=lambda one: one.rect.x0):
        for chain in chains:
            last = chain[-1]
            if (
                "right" in last.cut
                and "left" in piece.cut
                and not last.tiles & piece.tiles
                and piece.rect.x0 < last.rect.x1 <= piece.rect.x1
                and _same_row(last.rect, piece.rect)
            ):
                chain.append(piece)
                break
        else:
            chains.append([piece])
    return chains


def _same_row(a: _Rect, b: _Rect) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap >= SAME_ROW_OVERLAP * min(a.y1 - a.y0, b.y1 - b.y0)


def _joined(chain: Sequence[_Candidate]) -> _Candidate:
    """One line from the pieces of a cut line, left to right."""
    if len(chain) == 1:
        return chain[0]
    words = list(_words(chain[0].line))
    for left, right in itertools.pairwise(chain):
        margin = _edge_margin(left.rect)
        words = _join_words(words, left.rect.x1, list(_words(right.line)), right.rect.x0, margin)
    first, last = chain[0], chain[-1]
    line = TextLine(
        quad=(first.line.quad[0], last.line.quad[1], last.line.quad[2], first.line.quad[3]),
        text=" ".join(text for text, _, _ in words),
        score=min(piece.line.score for piece in chain),
        words=tuple(words),
    )
    return _Candidate(
        line=line,
        tiles=frozenset().union(*(piece.tiles for piece in chain)),
        rect=_bounds(line.quad),
        cut=(first.cut - {"right"}) | (last.cut - {"left"}),
    )


def _join_words(
    left: list[WordBox], left_edge: float, right: list[WordBox], right_edge: float, margin: float
) -> list[WordBox]:
    """The words of two pieces of one line, each word once.

    A word touching a piece's cut edge may be half a word: it is left out where the other piece
    read a word there away from its own edge. Of a word both pieces read (their boxes overlap
    by half the narrower one) the copy farther from its piece's cut edge is kept.
    """
    left_sure = [word for word in left if _span(word)[1] < left_edge - margin]
    right_sure = [word for word in right if _span(word)[0] > right_edge + margin]
    left = [word for word in left if word in left_sure or not any(_overlap(word, sure) > 0 for sure in right_sure)]
    right = [word for word in right if word in right_sure or not any(_overlap(word, sure) > 0 for sure in left_sure)]
    dropped_left: set[int] = set()
    dropped_right: set[int] = set()
    for i, word in enumerate(left):
        for j, other in enumerate(right):
            if _overlap(word, other) >= SAME_WORD_OVERLAP * min(_width(word), _width(other)):
                if left_edge - _span(word)[1] >= _span(other)[0] - right_edge:
                    dropped_right.add(j)
                else:
                    dropped_left.add(i)
    kept = [word for i, word in enumerate(left) if i not in dropped_left]
    kept += [word for j, word in enumerate(right) if j not in dropped_right]
    return sorted(kept, key=lambda word: _centre_x(word[2]))


def _overlap(a: WordBox, b: WordBox) -> float:
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return min(a1, b1) - max(a0, b0)


def _width(word: WordBox) -> float:
    start, end = _span(word)
    return end - start


def _span(word: WordBox) -> tuple[float, float]:
    xs = [x for x, _ in word[2]]
    return min(xs), max(xs)


def _words(line: TextLine) -> tuple[WordBox, ...]:
    """The line's words, or, where the engine gave no word boxes, its words placed along the
    line in proportion to their characters."""
    if line.words:
        return line.words
    texts = line.text.split()
    total = max(len(line.text), 1)
    top_left, top_right, bottom_right, bottom_left = line.quad
    placed: list[WordBox] = []
    position = 0
    for text in texts:
        start = line.text.index(text, position)
        position = start + len(text)
        a, b = start / total, position / total
        quad = (
            _along(top_left, top_right, a),
            _along(top_left, top_right, b),
            _along(bottom_left, bottom_right, b),
            _along(bottom_left, bottom_right, a),
        )
        placed.append((text, line.score, quad))
    return tuple(placed)


def _along(start: Point, end: Point, share: float) -> Point:
    return (start[0] + (end[0] - start[0]) * share, start[1] + (end[1] - start[1]) * share)


def _centre_x(quad: Quad) -> float:
    return sum(x for x, _ in quad) / 4


def _bounds(quad: Quad) -> _Rect:
    xs = [x for x, _ in quad]
    ys = [y for _, y in quad]
    return _Rect(x0=min(xs), y0=min(ys), x1=max(xs), y1=max(ys))


def _moved(quad: Quad, dx: float, dy: float) -> Quad:
    a, b, c, d = ((x + dx, y + dy) for x, y in quad)
    return (a, b, c, d)
