"""A newspaper-sized sheet read in one pass and in tiles: words found per quarter and seconds.

    .venv/bin/python bench/bench_big_page.py

The sheet is four copies of linn.png, 2 x 2, on 5,100 x 6,600 px (tests/ocr_quality.four_up).
Both reads go through read_page (orientation, recognition, reading order) on one engine
process with one thread; the one-pass read is the same engine with tiling switched off.
Prints one markdown row per path, the detector pass that decides whether a big page is tiled,
and linn.png alone for scale. Compare rows of one run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.ocr_quality

from tests.ocr_quality import TEST_DATA, four_up, quarter_text, words_found

from bulkocr_ocr_worker.engines import RapidOcrEngine, read_page
from bulkocr_ocr_worker.tiling import TilingSettings

ONE_PASS = TilingSettings(above_side=sys.maxsize)


def main() -> None:
    truth = (TEST_DATA / "linn.txt").read_text(encoding="utf-8")
    with Image.open(TEST_DATA / "linn.png") as image:
        linn = image.convert("L")
    sheet = four_up(linn)
    print("| path | seconds | words found per quarter (TL, TR, BL, BR) |")
    print("| --- | ---: | --- |")
    for name, tiling in (("one pass", ONE_PASS), ("tiled", TilingSettings())):
        engine = RapidOcrEngine(tiling=tiling)
        engine.recognize(Image.new("L", (640, 480), 255), language=None, dpi=300)  # load the models
        started = time.perf_counter()
        page = read_page(engine, sheet, language=None, dpi=300)
        seconds = time.perf_counter() - started
        found = [100 * words_found(quarter_text(page, column, row), truth) for row in (0, 1) for column in (0, 1)]
        print(f"| {name} | {seconds:.1f} | {', '.join(f'{share:.1f} %' for share in found)} |")
    engine = RapidOcrEngine()
    engine.recognize(Image.new("L", (640, 480), 255), language=None, dpi=300)
    started = time.perf_counter()
    engine.find_text_lines(sheet)  # what a page over BULKOCR_RAPIDOCR_TILE_ABOVE_SIDE pays to be judged
    print(f"| the judging detector pass alone | {time.perf_counter() - started:.1f} | |")
    started = time.perf_counter()
    page = read_page(engine, linn, language=None, dpi=300)
    seconds = time.perf_counter() - started
    print(f"| linn.png alone | {seconds:.1f} | {100 * words_found(page.text, truth):.1f} % |")


if __name__ == "__main__":
    main()
