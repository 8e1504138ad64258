"""Reading order on synthetic line boxes shaped like a 300 dpi letter page from a DB text detector."""

from __future__ import annotations

import math

import pytest

from bulkocr.page_model import Block, Box, Line
from bulkocr_ocr_worker.reading_order import PlacedLine, Quad, estimate_skew, order_lines

# Detector-like boxes: 50 px high on a 48 px line pitch, so neighbouring boxes overlap a little.
HEIGHT = 50
PITCH = 48
PAGE_CENTRE = (1275.0, 1650.0)


def placed(text: str, x0: int, y0: int, x1: int, y1: int) -> PlacedLine:
    return PlacedLine.from_line(Line(text=text, box=Box(x0=x0, y0=y0, x1=x1, y1=y1), confidence=1.0))


def column(name: str, *, x0: int, x1: int, top: int, count: int) -> list[PlacedLine]:
    """Ragged-right lines of one column, the last one short like a paragraph's end."""
    lines = []
    for row in range(count):
        right = x0 + (x1 - x0) // 3 if row == count - 1 else x1 - (row % 3) * 60
        y0 = top + row * PITCH
        lines.append(placed(f"{name}{row}", x0, y0, right, y0 + HEIGHT))
    return lines


def engine_order(lines: list[PlacedLine]) -> list[PlacedLine]:
    """What a line-level engine returns: top to bottom across the page, columns interleaved."""
    return sorted(lines, key=lambda line: (line.line.box.y0, line.line.box.x0))


def texts(blocks: list[Block]) -> list[str]:
    return [line.text for block in blocks for line in block.lines]


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{row}" for row in range(count)]


def rotated(lines: list[PlacedLine], degrees: float) -> list[PlacedLine]:
    """The lines as a scanner skewed by `degrees` (clockwise) would return them."""
    angle = math.radians(degrees)
    cx, cy = PAGE_CENTRE

    def turn(point: tuple[float, float]) -> tuple[float, float]:
        x, y = point[0] - cx, point[1] - cy
        return (cx + x * math.cos(angle) - y * math.sin(angle), cy + x * math.sin(angle) + y * math.cos(angle))

    result = []
    for line in lines:
        a, b, c, d = (turn(point) for point in line.quad)
        quad: Quad = (a, b, c, d)
        box = Box.around(list(quad))
        result.append(PlacedLine(line=line.line.model_copy(update={"box": box}), quad=quad))
    return result


@pytest.mark.parametrize("right_column_offset", [0, 24], ids=["aligned-baselines", "offset-baselines"])
def test_two_columns_are_read_one_after_the_other(right_column_offset: int) -> None:
    """Lines that arrive interleaved row by row come back as the whole left column, then the right one."""
    left = column("L", x0=300, x1=1250, top=600, count=20)
    right = column("R", x0=1300, x1=2250, top=600 + right_column_offset, count=20)

    blocks = order_lines(engine_order(left + right))

    assert texts(blocks) == names("L", 20) + names("R", 20)
    assert len(blocks) == 2


@pytest.mark.parametrize("degrees", [-3.0, -1.0, 2.0, 3.0])
def test_skewed_two_columns_keep_column_order(degrees: float) -> None:
    """A page skewed by a few degrees is cut in its own frame: the skew is estimated from the line boxes,
    even when the columns' edges drift across each other's gutter over the page height."""
    page = column("L", x0=300, x1=1250, top=900, count=30) + column("R", x0=1300, x1=2250, top=900, count=30)
    skewed = rotated(page, degrees)

    assert estimate_skew([line.quad for line in skewed]) == pytest.approx(degrees, abs=0.05)
    assert texts(order_lines(engine_order(skewed))) == names("L", 30) + names("R", 30)


def test_single_column_stays_one_block_in_order() -> None:
    """Ragged lines, an indented first line and a short last line are one block, read top to bottom."""
    lines = column("P", x0=300, x1=2250, top=400, count=12)
    lines[0] = placed("P0", 420, 400, 2250, 400 + HEIGHT)

    blocks = order_lines(engine_order(lines))

    assert texts(blocks) == names("P", 12)
    assert len(blocks) == 1


def test_short_lines_of_a_list_are_not_taken_for_columns() -> None:
    """A list of short left-aligned lines (a recipe's ingredients) and the paragraph under it keep their order."""
    items = [
        placed(f"I{row}", 300, 400 + row * PITCH, 300 + 250 + 90 * (row % 4), 400 + row * PITCH + HEIGHT)
        for row in range(6)
    ]
    paragraph = column("P", x0=300, x1=2250, top=800, count=8)

    assert texts(order_lines(engine_order(items + paragraph))) == names("I", 6) + names("P", 8)


def test_a_blank_line_between_paragraphs_starts_a_new_block() -> None:
    """Paragraphs of one column separated by a wide gap become two blocks, still in order."""
    first = column("A", x0=300, x1=2250, top=400, count=5)
    second = column("B", x0=300, x1=2250, top=400 + 5 * PITCH + 100, count=5)

    blocks = order_lines(engine_order(first + second))

    assert [block.text.split("\n") for block in blocks] == [names("A", 5), names("B", 5)]


def test_double_spaced_typescript_stays_one_block() -> None:
    """Wide but regular line spacing is not a paragraph break: only a gap well above the usual one is."""
    lines = [placed(f"D{row}", 300, 400 + row * 2 * PITCH, 2250, 400 + row * 2 * PITCH + HEIGHT) for row in range(8)]

    blocks = order_lines(engine_order(lines))

    assert [block.text.split("\n") for block in blocks] == [names("D", 8)]


def test_headings_that_span_both_columns_are_read_where_they_stand() -> None:
    """A title over both columns, a heading between two two-column sections and a footer stay in place,
    and each section's columns are read left then right."""
    title = placed("title", 600, 200, 1950, 300)
    upper = column("UL", x0=300, x1=1250, top=400, count=10) + column("UR", x0=1300, x1=2250, top=400, count=10)
    heading = placed("heading", 300, 950, 2200, 1000)
    lower = column("LL", x0=300, x1=1250, top=1100, count=8) + column("LR", x0=1300, x1=2250, top=1100, count=8)
    footer = placed("footer", 300, 1600, 2250, 1650)

    blocks = order_lines(engine_order([title, *upper, heading, *lower, footer]))

    assert texts(blocks) == [
        "title",
        *names("UL", 10),
        *names("UR", 10),
        "heading",
        *names("LL", 8),
        *names("LR", 8),
        "footer",
    ]


def test_columns_that_end_the_page_follow_their_title() -> None:
    """A title over two columns that run to the bottom of the page: title, left column, right column."""
    title = placed("title", 600, 200, 1950, 300)
    left = column("L", x0=300, x1=1250, top=400, count=12)
    right = column("R", x0=1300, x1=2250, top=400, count=12)

    assert texts(order_lines(engine_order([title, *left, *right]))) == ["title", *names("L", 12), *names("R", 12)]


def test_bullets_detected_apart_stay_next_to_their_text() -> None:
    """Bullets boxed on their own form a narrow strip, not a column: each bullet is read before its item."""
    lines = []
    for row in range(6):
        y0 = 400 + row * 70
        lines += [placed(f"bullet{row}", 300, y0, 340, y0 + HEIGHT), placed(f"item{row}", 380, y0, 2200, y0 + HEIGHT)]

    expected = [text for row in range(6) for text in (f"bullet{row}", f"item{row}")]
    assert texts(order_lines(engine_order(lines))) == expected


def test_a_line_split_in_two_boxes_is_read_left_to_right() -> None:
    """When the detector breaks one line at a wide space, the two pieces are read left then right,
    even if the right piece sits a few pixels higher."""
    lines = column("P", x0=300, x1=2250, top=400, count=4)
    lines.insert(2, placed("left", 300, 600, 900, 650))
    lines.insert(3, placed("right", 1500, 596, 2250, 646))
    lines += column("Q", x0=300, x1=2250, top=700, count=3)

    ordered = texts(order_lines(engine_order(lines)))

    assert ordered.index("left") + 1 == ordered.index("right")
    assert ordered[-3:] == names("Q", 3)


def test_empty_page_has_no_blocks() -> None:
    """No lines in, no blocks out (and no skew to estimate)."""
    assert order_lines([]) == []
    assert estimate_skew([]) == 0.0


def test_skew_estimate_ignores_short_and_vertical_boxes() -> None:
    """Only long horizontal lines measure skew: word-sized boxes and vertical margin text are ignored."""
    short = rotated([placed("w", 300, 300, 400, 350)], 8.0)[0].quad
    vertical = placed("v", 100, 300, 150, 2000).quad
    long_lines = [line.quad for line in rotated(column("P", x0=300, x1=2250, top=400, count=5), 1.5)]

    assert estimate_skew([short, vertical]) == 0.0
    assert estimate_skew([short, vertical, *long_lines]) == pytest.approx(1.5, abs=0.05)


def test_block_boxes_hold_their_lines_in_page_coordinates() -> None:
    """Each block's box is the union of its lines' original boxes, not of the deskewed ones."""
    page = rotated(
        column("L", x0=300, x1=1250, top=900, count=10) + column("R", x0=1300, x1=2250, top=900, count=10), 2.0
    )

    for block in order_lines(engine_order(page)):
        assert block.box == Box.union([line.box for line in block.lines])
