"""Page orientation: turning conventions, the sampling logic on a scripted reader, and the real engine on real pages."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageStat

from bulkocr_ocr_worker.engines import RapidOcrEngine
from bulkocr_ocr_worker.orientation import (
    FIRST_SAMPLES,
    MAX_SAMPLES,
    ROTATIONS,
    find_orientation,
    turn_clockwise,
)
from bulkocr_ocr_worker.reading_order import Quad
from tests.ocr_quality import TEST_DATA, render_pdf_pages

# A synthetic 300 dpi letter page whose "lines" are bars: dark where reading starts, grey where it ends.
PAGE_SIZE = (2550, 3300)
BAR_LENGTH, BAR_THICKNESS = 1400, 50


class BarReader:
    """Stands in for an engine: knows where the bars are, and is confident only about a crop that is wide
    and dark on its left, which is what an upright line looks like on this synthetic page."""

    def __init__(self, bars: list[tuple[int, int, int, int]], page_width: int, *, upright: float = 0.95) -> None:
        self.bars = bars
        self.page_width = page_width
        self.upright = upright
        self.lines_read = 0

    def find_text_lines(self, image: Image.Image) -> list[Quad]:
        scale = image.width / self.page_width
        return [
            ((x0 * scale, y0 * scale), (x1 * scale, y0 * scale), (x1 * scale, y1 * scale), (x0 * scale, y1 * scale))
            for x0, y0, x1, y1 in self.bars
        ]

    def read_text_line(self, image: Image.Image) -> tuple[str, float]:
        self.lines_read += 1
        if image.width <= image.height:
            return "", 0.05
        third = image.width // 3
        start = ImageStat.Stat(image.crop((0, 0, third, image.height))).mean[0]
        end = ImageStat.Stat(image.crop((image.width - third, 0, image.width, image.height))).mean[0]
        return ("text", self.upright) if start < end else ("txet", 0.4)


def bar_page(rotation: int, count: int = 8) -> tuple[Image.Image, BarReader]:
    """A page that must be turned clockwise by `rotation` to read, and a reader that knows its bars."""
    upright = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(upright)
    for row in range(count):
        x0, y0 = 400, 400 + row * 150
        draw.rectangle((x0, y0, x0 + BAR_LENGTH // 2, y0 + BAR_THICKNESS), fill=0)
        draw.rectangle((x0 + BAR_LENGTH // 2, y0, x0 + BAR_LENGTH, y0 + BAR_THICKNESS), fill=160)
    page = turn_clockwise(upright, (360 - rotation) % 360)
    bars = [_bar_on_page(400, 400 + row * 150, rotation) for row in range(count)]
    return page, BarReader(bars, page.width)


def _bar_on_page(x0: int, y0: int, rotation: int) -> tuple[int, int, int, int]:
    """Where an upright bar lands once the page is turned counter-clockwise by `rotation`."""
    width, height = PAGE_SIZE
    x1, y1 = x0 + BAR_LENGTH, y0 + BAR_THICKNESS
    if rotation == 0:
        return (x0, y0, x1, y1)
    if rotation == 90:  # turned counter-clockwise: the top edge is now on the left
        return (y0, width - x1, y1, width - x0)
    if rotation == 180:
        return (width - x1, height - y1, width - x0, height - y0)
    return (height - y1, x0, height - y0, x1)


def test_turn_clockwise_moves_the_left_edge_to_the_top() -> None:
    """turn_clockwise(…, 90) turns clockwise (the left edge becomes the top); 270 is a quarter turn back."""
    image = Image.new("L", (2, 1), 255)
    image.putpixel((0, 0), 0)

    assert turn_clockwise(image, 90).getpixel((0, 0)) == 0
    assert turn_clockwise(image, 180).getpixel((1, 0)) == 0
    assert turn_clockwise(image, 270).getpixel((0, 1)) == 0
    assert turn_clockwise(image, 0) is image


def test_turn_clockwise_rejects_other_angles() -> None:
    """Only quarter turns are orientations; anything else is a caller's bug."""
    with pytest.raises(ValueError, match="rotation must be one of"):
        turn_clockwise(Image.new("L", (2, 2)), 45)


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_orientation_turns_lines_both_ways_and_keeps_the_confident_one(rotation: int) -> None:
    """Horizontal lines are tried at 0° and 180°, vertical ones at 90° and 270°; the direction in which the
    reader is confident wins, for every quarter turn."""
    page, reader = bar_page(rotation)

    assert find_orientation(reader, page).rotation == rotation


def test_orientation_stops_sampling_once_the_answer_is_clear() -> None:
    """With a wide confidence margin only the first few lines are read, each in both directions."""
    page, reader = bar_page(0)

    orientation = find_orientation(reader, page)

    assert orientation.sampled_lines == FIRST_SAMPLES
    assert reader.lines_read == 2 * FIRST_SAMPLES
    assert orientation.margin == pytest.approx(0.55)


def test_orientation_reads_more_lines_when_the_margin_is_thin() -> None:
    """When upright and upside-down readings are close, up to MAX_SAMPLES lines are read before deciding."""
    page, reader = bar_page(180, count=10)
    reader.upright = 0.5

    orientation = find_orientation(reader, page)

    assert orientation.rotation == 180
    assert orientation.sampled_lines == MAX_SAMPLES


def test_page_without_text_is_left_as_it_is() -> None:
    """No detected line means rotation 0, with nothing read."""
    reader = BarReader([], PAGE_SIZE[0])

    orientation = find_orientation(reader, Image.new("L", PAGE_SIZE, 255))

    assert (orientation.rotation, orientation.sampled_lines, reader.lines_read) == (0, 0, 0)


@pytest.fixture(scope="module")
def rapidocr_engine() -> RapidOcrEngine:
    return RapidOcrEngine()


@pytest.fixture(scope="module")
def cardinal_pages() -> list[Image.Image]:
    return render_pdf_pages(TEST_DATA / "cardinal.pdf")


@pytest.mark.parametrize(("page_number", "rotation"), [(1, 0), (2, 270), (3, 180), (4, 90)])
def test_cardinal_pages_are_found_in_every_direction(
    rapidocr_engine: RapidOcrEngine, cardinal_pages: list[Image.Image], page_number: int, rotation: int
) -> None:
    """The real engine finds how each page of cardinal.pdf (linn.png turned four ways) must be turned,
    with a clear confidence margin."""
    orientation = find_orientation(rapidocr_engine, cardinal_pages[page_number - 1])

    assert orientation.rotation == rotation
    assert orientation.margin >= 0.2


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_typewriter_page_is_found_in_every_direction(rapidocr_engine: RapidOcrEngine, rotation: int) -> None:
    """A typewritten one-column page turned each way is recognised as needing exactly that turn back."""
    with Image.open(TEST_DATA / "typewriter.png") as image:
        upright = image.convert("L")
    page = turn_clockwise(upright, (360 - rotation) % 360)

    assert find_orientation(rapidocr_engine, page).rotation == rotation


def test_skewed_page_is_upright(rapidocr_engine: RapidOcrEngine) -> None:
    """A page skewed by 2° (skew.pdf) is found upright with a clear margin: skew is not orientation."""
    (page,) = render_pdf_pages(TEST_DATA / "skew.pdf")

    orientation = find_orientation(rapidocr_engine, page)

    assert orientation.rotation == 0
    assert orientation.margin >= 0.2
