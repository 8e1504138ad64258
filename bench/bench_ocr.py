"""OCR accuracy and speed per page on the real scans: orientation and recognition timed apart.

    .venv/bin/python bench/bench_ocr.py
    .venv/bin/python bench/bench_ocr.py --scripts

Prints one markdown row per page (rotation found, seconds for orientation and recognition, and
the character error rate against the hand transcription where there is one), then peak memory.
With `--scripts`: generated Russian, Greek and Arabic pages (tests/script_pages.py, 10 noise
seeds each) read through the worker's routing, with the language named and without, and what
script detection costs on the real Latin scans.
Speed varies with what else the machine runs; compare rows of one run, not runs.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.ocr_quality

from tests.ocr_quality import TEST_DATA, character_error_rate, render_pdf_pages
from tests.script_pages import SCRIPTS, render
from tests.script_pages import truth as script_truth

from bulkocr_ocr_worker.engines import OcrEngine, RapidOcrEngine, make_engine, read_page
from bulkocr_ocr_worker.engines.tesseract import ScriptDetector
from bulkocr_ocr_worker.orientation import find_orientation, greyscale_or_rgb, turn_clockwise
from bulkocr_ocr_worker.routing import Router

SEEDS = range(10)


def pages() -> list[tuple[str, Image.Image, str | None]]:
    linn = (TEST_DATA / "linn.txt").read_text()
    typewriter = (TEST_DATA / "typewriter.txt").read_text()
    found: list[tuple[str, Image.Image, str | None]] = [("linn.png", Image.open(TEST_DATA / "linn.png"), linn)]
    found += [("skew.pdf", page, linn) for page in render_pdf_pages(TEST_DATA / "skew.pdf")]
    found += [
        (f"cardinal.pdf p{n}", page, linn) for n, page in enumerate(render_pdf_pages(TEST_DATA / "cardinal.pdf"), 1)
    ]
    found += [("typewriter.png", Image.open(TEST_DATA / "typewriter.png"), typewriter)]
    found += [("c02-22.pdf", page, None) for page in render_pdf_pages(TEST_DATA / "c02-22.pdf")]
    return found


def main() -> None:
    engine = RapidOcrEngine()
    engine.recognize(Image.new("L", (640, 480), 255), language=None, dpi=300)  # load the models
    print("| page | rotation | orientation s | recognition s | CER |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, image, truth in pages():
        image = greyscale_or_rgb(image)
        started = time.perf_counter()
        orientation = find_orientation(engine, image)
        oriented = time.perf_counter()
        page = engine.recognize(turn_clockwise(image, orientation.rotation), language=None, dpi=300)
        done = time.perf_counter()
        cer = f"{100 * character_error_rate(page.text, truth):.2f} %" if truth else "n/a"
        print(f"| {name} | {orientation.rotation} | {oriented - started:.2f} | {done - oriented:.2f} | {cer} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


def scripts() -> None:
    engines: dict[str, OcrEngine] = {}

    def engine(name: str) -> OcrEngine:
        if name not in engines:
            engines[name] = make_engine(name)
        return engines[name]

    router = Router(engine)
    print("| script | job's language | engine | CER median | CER worst | pages ≤ 3 % | s/page (routing + OCR) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for script in SCRIPTS:
        for language in (script.language, None):
            rates, seconds, used = [], [], set()
            for seed in SEEDS:
                image = render(script, seed=seed)
                started = time.perf_counter()
                route = router.route("rapidocr", language, image)
                page = read_page(engine(route.engine), image, language=route.language, dpi=300)
                seconds.append(time.perf_counter() - started)
                rates.append(character_error_rate(page.text, script_truth(script)))
                used.add(route.engine)
            print(
                f"| {script.name} | {language or 'none (detected)'} | {', '.join(sorted(used))} "
                f"| {100 * statistics.median(rates):.2f} % | {100 * max(rates):.2f} % "
                f"| {sum(rate <= 0.03 for rate in rates)}/{len(rates)} | {statistics.mean(seconds):.2f} |"
            )
    detector = ScriptDetector()
    print("\n| real scan | script detected (OSD confidence) | OSD s |")
    print("| --- | --- | ---: |")
    for name, image, _ in pages():
        started = time.perf_counter()
        found = detector.detect(image)
        took = time.perf_counter() - started
        said = f"{found.script} ({found.confidence:.1f})" if found else "cannot tell"
        print(f"| {name} | {said} | {took:.2f} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    scripts() if "--scripts" in sys.argv[1:] else main()
