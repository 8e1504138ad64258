"""Tiled reading of big pages: which pages are tiled, the tile layout, and the merge of lines found in
overlapping tiles (synthetic boxes; no model runs)."""

from __future__ import annotations

import itertools

import pytest
from PIL import Image
from pydantic import ValidationError

from bulkocr_ocr_worker.reading_order import Quad
from bulkocr_ocr_worker.service import WorkerSettings
from bulkocr_ocr_worker.tiling import (
    TextLine,
    Tile,
    TilingSettings,
    merge_tile_lines,
    plan_tiles,
    read_tiled,
    tile_layout,
    tile_spans,
)

SETTINGS = TilingSettings(above_side=4000, min_text_px=15.0, tile_side=2560, overlap=384)
SHEET = (5100, 6600)


def rect(x0: float, y0: float, x1: float, y1: float) -> Quad:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def line(text: str, x0: float, y0: float, x1: float, y1: float, *, words: bool = True) -> TextLine:
    """A line whose words share its width evenly (one space's width between them)."""
    texts = text.split()
    slots = sum(len(word) for word in texts) + len(texts) - 1
    step = (x1 - x0) / slots
    placed = []
    position = 0
    for word in texts:
        left = x0 + position * step
        placed.append((word, 0.99, rect(left, y0, left + len(word) * step, y1)))
        position += len(word) + 1
    return TextLine(quad=rect(x0, y0, x1, y1), text=text, score=0.99, words=tuple(placed) if words else ())


def clipped(whole: TextLine, tile: Tile) -> TextLine:
    """What a tile sees of a line: its box clipped to the tile, and the words whose middle lies inside."""
    (x0, y0), _, (x1, y1), _ = whole.quad
    left, right = max(x0, tile.x0), min(x1, tile.x1 - 1)
    words = tuple(word for word in whole.words if left <= sum(x for x, _ in word[2]) / 4 < right)
    return TextLine(
        quad=rect(left, max(y0, tile.y0), right, min(y1, tile.y1 - 1)),
        text=" ".join(text for text, _, _ in words),
        score=whole.score,
        words=words,
    )


def seen(tiles: list[Tile], lines: list[TextLine]) -> list[tuple[Tile, list[TextLine]]]:
    """Every line as each tile it reaches would report it."""
    found = []
    for tile in tiles:
        inside = []
        for whole in lines:
            (x0, y0), _, (x1, y1), _ = whole.quad
            if x0 < tile.x1 and x1 > tile.x0 and y0 < tile.y1 and y1 > tile.y0:
                inside.append(clipped(whole, tile))
        found.append((tile, inside))
    return found


def test_small_pages_are_never_tiled_whatever_their_text() -> None:
    """A page up to `above_side` keeps the one-pass read, even when its text looks small."""
    tiny_text = [rect(0, y, 2000, y + 30) for y in range(0, 3000, 60)]
    assert plan_tiles((2550, 3300), tiny_text, 1280, SETTINGS) == []
    assert plan_tiles((4000, 3000), tiny_text, 1280, SETTINGS) == []


def test_big_pages_are_tiled_only_when_the_detector_sees_small_text() -> None:
    """On a 6,600 px page the detector's copy is shrunk 5.2 times: 50 px lines (9.7 px there) are
    tiled, 100 px lines (19 px there, a 600 dpi page) are read in one pass."""
    small = [rect(0, y, 2000, y + 50) for y in range(0, 6000, 100)]
    large = [rect(0, y, 2000, y + 100) for y in range(0, 6000, 200)]

    assert len(plan_tiles(SHEET, small, 1280, SETTINGS)) == 9
    assert plan_tiles(SHEET, large, 1280, SETTINGS) == []


def test_a_big_page_without_text_is_not_tiled() -> None:
    """Nothing found on the shrunk copy gives no height to judge by: one pass, no tiles."""
    assert plan_tiles(SHEET, [], 1280, SETTINGS) == []


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (2000, [(0, 2000)]),
        (2560, [(0, 2560)]),
        (4700, [(0, 2542), (2158, 4700)]),
        (5100, [(0, 1956), (1572, 3528), (3144, 5100)]),
    ],
)
def test_tile_spans_share_the_length_evenly_with_at_least_the_overlap(
    length: int, expected: list[tuple[int, int]]
) -> None:
    """The fewest tiles of at most the tile side cover the length edge to edge, equally long,
    neighbours overlapping by at least the setting."""
    spans = tile_spans(length, 2560, 384)

    assert spans == expected
    assert spans[0][0] == 0
    assert spans[-1][1] == length
    assert all(end - start <= 2560 for start, end in spans)
    assert all(end - following >= 384 for (_, end), (following, _) in itertools.pairwise(spans))


def test_tile_layout_covers_the_page_row_by_row() -> None:
    """A 5,100 x 6,600 sheet takes 3 x 3 tiles, none wider than 2,560 px."""
    tiles = tile_layout(*SHEET, SETTINGS)

    assert len(tiles) == 9
    assert tiles[0] == Tile(0, 0, 1956, 2456)
    assert tiles[-1] == Tile(3144, 4144, 5100, 6600)
    assert [tile.y0 for tile in tiles[:3]] == [0, 0, 0]


def test_overlap_must_be_narrower_than_the_tile() -> None:
    """A tile that overlaps its neighbour completely would never advance."""
    with pytest.raises(ValueError, match="overlap"):
        TilingSettings(tile_side=1000, overlap=1000)


def test_lines_inside_one_tile_come_out_unchanged() -> None:
    """Lines away from every tile edge are taken as their tile read them."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    left = line("left column text", 100, 100, 1500, 150)
    right = line("right column text", 3000, 100, 4500, 150)

    merged = merge_tile_lines(seen(tiles, [left, right]), (4736, 2560))

    assert merged == [left, right]


def test_a_line_in_the_overlap_is_kept_once() -> None:
    """A line that both tiles hold whole (it lies in their overlap) appears once."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    short = line("in the overlap", 2200, 400, 2500, 450)

    merged = merge_tile_lines(seen(tiles, [short]), (4736, 2560))

    assert [one.text for one in merged] == ["in the overlap"]


def test_a_line_cut_by_one_tile_is_taken_from_the_tile_that_holds_it_whole() -> None:
    """A line crossing the left tile's right edge but inside the right tile comes from the right tile."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    crossing = line("starts in the overlap and runs on", 2300, 400, 3400, 450)

    merged = merge_tile_lines(seen(tiles, [crossing]), (4736, 2560))

    assert merged == [crossing]


def test_a_line_longer_than_the_overlap_is_joined_word_by_word() -> None:
    """A line cut in both tiles is joined: each word once, in order, from the piece that holds it."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    long = line("a headline that runs right across the gap between two tiles of the page", 800, 300, 4200, 380)

    merged = merge_tile_lines(seen(tiles, [long]), (4736, 2560))

    assert [one.text for one in merged] == [long.text]
    assert [word[0] for word in merged[0].words] == long.text.split()
    assert merged[0].quad[0] == (800.0, 300.0)
    assert merged[0].quad[2][0] == pytest.approx(4200)


def test_a_line_across_three_tiles_is_joined_from_three_pieces() -> None:
    """A banner wider than two tiles is joined from all three pieces."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560), Tile(4352, 0, 6912, 2560)]
    banner = line(" ".join(f"word{number}" for number in range(60)), 100, 200, 6800, 300)

    merged = merge_tile_lines(seen(tiles, [banner]), (6912, 2560))

    assert [one.text for one in merged] == [banner.text]


def test_pieces_without_word_boxes_are_split_by_their_characters() -> None:
    """Lines without word boxes are joined by where their words fall along the line: every word
    once, in order, when each piece reads the words it holds and those its edge cuts."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    long = line("no word boxes came with this long line across the two tiles", 1000, 300, 4000, 380)
    found = []
    for tile, pieces in seen(tiles, [long]):
        texts = []
        for piece in pieces:
            (left, _), _, (right, _), _ = piece.quad
            touched = [text for text, _, quad in long.words if quad[0][0] < right and quad[1][0] > left]
            texts.append(TextLine(quad=piece.quad, text=" ".join(touched), score=piece.score))
        found.append((tile, texts))

    merged = merge_tile_lines(found, (4736, 2560))

    assert [one.text for one in merged] == [long.text]


def test_a_line_cut_by_a_tile_bottom_is_taken_from_the_tile_below() -> None:
    """A line crossing the upper tile's bottom edge comes from the tile below, which holds it whole."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(0, 2176, 2560, 4736)]
    crossing = line("half in the upper tile", 100, 2530, 1500, 2590)

    merged = merge_tile_lines(seen(tiles, [crossing]), (2560, 4736))

    assert merged == [crossing]


def test_pieces_on_different_rows_are_not_joined() -> None:
    """Two cut lines one above the other stay two lines, each joined with its own continuation."""
    tiles = [Tile(0, 0, 2560, 2560), Tile(2176, 0, 4736, 2560)]
    upper = line("the upper line runs over the tile edge and on", 1000, 300, 4000, 350)
    lower = line("the lower line also runs over the edge and on", 1000, 360, 4000, 410)

    merged = merge_tile_lines(seen(tiles, [upper, lower]), (4736, 2560))

    assert [one.text for one in merged] == [upper.text, lower.text]


def test_read_tiled_reads_each_tile_and_returns_page_coordinates() -> None:
    """read_tiled crops each tile, hands it to the reader, and shifts what it finds onto the page."""
    image = Image.new("L", (300, 100), 255)
    tiles = [Tile(0, 0, 200, 100), Tile(100, 0, 300, 100)]
    sizes = []

    def read(crop: Image.Image) -> list[TextLine]:
        sizes.append(crop.size)
        return [line("word", 10, 10, 50, 30)]

    merged = read_tiled(image, tiles, read)

    assert sizes == [(200, 100), (200, 100)]
    assert [one.quad[0] for one in merged] == [(10.0, 10.0), (110.0, 10.0)]


def test_half_a_word_at_a_cut_edge_gives_way_to_the_whole_word() -> None:
    """A piece reads a word its tile's edge cuts as a fragment ("s" of "sequence"), whose box
    need not line up with the whole word's: the fragment is left out, the whole word kept once."""
    tiles = [Tile(0, 0, 2000, 1000), Tile(1600, 0, 3600, 1000)]
    left = TextLine(
        quad=rect(1200, 300, 1999, 340),
        text="in the same s",
        score=0.9,
        words=(
            ("in", 0.9, rect(1210, 300, 1250, 340)),
            ("the", 0.9, rect(1700, 300, 1760, 340)),
            ("same", 0.9, rect(1800, 300, 1880, 340)),
            ("s", 0.9, rect(1985, 300, 1998, 340)),
        ),
    )
    right = TextLine(
        quad=rect(1600, 300, 2400, 340),
        text="the same sequence",
        score=0.9,
        words=(
            ("the", 0.9, rect(1702, 300, 1760, 340)),
            ("same", 0.9, rect(1798, 300, 1882, 340)),
            ("sequence", 0.9, rect(1993, 300, 2150, 340)),
        ),
    )

    merged = merge_tile_lines([(tiles[0], [left]), (tiles[1], [right])], (3600, 1000))

    assert [one.text for one in merged] == ["in the same sequence"]


def test_a_word_gap_at_the_tile_edge_still_joins_the_line() -> None:
    """A line whose box stops a few pixels short of the tile's edge (a space fell on it) is taken
    as cut there, and joined with its continuation in the next tile."""
    tiles = [Tile(0, 0, 2000, 1000), Tile(1600, 0, 3600, 1000)]
    whole = line("another way is to record", 1300, 300, 2300, 340)
    left = TextLine(quad=rect(1300, 300, 1990, 340), text="another way", score=0.9, words=whole.words[:2])
    right = TextLine(quad=rect(1600, 300, 2300, 340), text=whole.text, score=0.9, words=whole.words)

    merged = merge_tile_lines([(tiles[0], [left]), (tiles[1], [right])], (3600, 1000))

    assert [one.text for one in merged] == [whole.text]


def test_worker_settings_carry_the_tiling_to_the_rapidocr_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The BULKOCR_RAPIDOCR_TILE_* variables reach the engine's settings."""
    monkeypatch.setenv("BULKOCR_RAPIDOCR_TILE_SIDE", "3000")
    monkeypatch.setenv("BULKOCR_RAPIDOCR_TILE_OVERLAP", "500")

    tiling = WorkerSettings().engine_settings()["rapidocr"]["tiling"]

    assert tiling == TilingSettings(above_side=4000, min_text_px=15.0, tile_side=3000, overlap=500)


def test_worker_settings_refuse_an_overlap_as_wide_as_the_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker with tiles that could not advance fails at start, naming the setting."""
    monkeypatch.setenv("BULKOCR_RAPIDOCR_TILE_SIDE", "1000")
    monkeypatch.setenv("BULKOCR_RAPIDOCR_TILE_OVERLAP", "1000")

    with pytest.raises(ValidationError, match="overlap"):
        WorkerSettings()
