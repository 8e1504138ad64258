"""How long each output format takes per page, on real OCR of real scans.

OCRs three test pages once (linn.png, cardinal.pdf's upside-down page, c02-22.pdf; about 15 s),
then renders the three-page document in every format, round after round, formats interleaved so
that a noisy neighbour slows them all alike. Prints a markdown table of the median milliseconds
per page, and each format's time as a multiple of the plain-text renderer's in the same run
(compare those ratios between machines and runs, not the milliseconds).

    .venv/bin/python bench/bench_outputs.py --rounds 7
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no py.typed marker
from PIL import Image

from bulkocr.renderers import FORMATS, OcrPage, render
from bulkocr_ocr_worker.engines import make_engine, read_page
from bulkocr_ocr_worker.orientation import turn_clockwise

TEST_DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DPI = 300


def pdf_page(path: Path, index: int) -> Image.Image:
    """One page of a PDF rasterised in grey at 300 dpi, as the ingest splitter does."""
    with pdfium.PdfDocument(path) as document:
        bitmap = document[index].render(scale=DPI / 72, grayscale=True)
        image: Image.Image = bitmap.to_pil().copy()
        bitmap.close()
        return image


def ocr_document() -> list[OcrPage]:
    """The three scans through the real engine, each with its upright image as PNG."""
    with Image.open(TEST_DATA / "linn.png") as linn:
        scans = [linn.convert("L"), pdf_page(TEST_DATA / "cardinal.pdf", 2), pdf_page(TEST_DATA / "c02-22.pdf", 0)]
    engine = make_engine("rapidocr")
    pages = []
    for scan in scans:
        text = read_page(engine, scan, language=None, dpi=DPI)
        buffer = io.BytesIO()
        turn_clockwise(scan, text.rotation).save(buffer, format="PNG")
        pages.append(OcrPage(text, buffer.getvalue()))
    return pages


def time_formats(pages: list[OcrPage], rounds: int) -> dict[str, list[float]]:
    """Seconds per whole-document render, per format and round (after one warm-up each)."""
    for name in FORMATS:
        render(name, pages)  # imports, font lookups and caches happen here, not in the timings
    seconds: dict[str, list[float]] = {name: [] for name in FORMATS}
    for _ in range(rounds):
        for name in FORMATS:
            start = time.perf_counter()
            render(name, pages)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def table(seconds: dict[str, list[float]], page_count: int, sizes: dict[str, int]) -> str:
    baseline = statistics.median(seconds["text"])
    rows = [
        "| format | ms/page (median) | x text | KiB/page |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, times in seconds.items():
        median = statistics.median(times)
        rows.append(
            f"| {name} | {median * 1000 / page_count:.2f} | {median / baseline:,.0f} | "
            f"{sizes[name] / 1024 / page_count:,.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="timed renders of the document per format")
    arguments = parser.parse_args()
    pages = ocr_document()
    words = sum(len(line.words) for page in pages for line in page.text.lines)
    seconds = time_formats(pages, arguments.rounds)
    sizes = {name: len(render(name, pages)) for name in FORMATS}
    print(f"{len(pages)} pages, {words} words, {arguments.rounds} rounds\n")
    print(table(seconds, len(pages), sizes))


if __name__ == "__main__":
    main()
