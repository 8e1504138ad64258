"""OCR accuracy and speed per page on the real scans: orientation and recognition timed apart.

    .venv/bin/python bench/bench_ocr.py
    .venv/bin/python bench/bench_ocr.py --scripts
    .venv/bin/python bench/bench_ocr.py --speed      # `make ocrmypdf` first, for the side-by-side

Prints one markdown row per page (rotation found, seconds for orientation and recognition, and
the character error rate against the hand transcription where there is one), then peak memory.
With `--scripts`: generated Russian, Greek and Arabic pages (tests/script_pages.py, 10 noise
seeds each) read through the worker's routing, with the language named and without, and what
script detection costs on the real Latin scans. With `--speed`: pages per minute on two
processes over the speed set (below) and the character error rate of every page, for the
engine alone (each setting, on pages rendered before the clock starts; and once with each
page rendered from its file on the clock), the whole pipeline (`bulkocr up --workers 2`) and
OCRmyPDF 17 with Tesseract, plain and with `--rotate-pages --deskew`, all in one run.
Speed varies with what else the machine runs; compare rows of one run, not runs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.ocr_quality

from tests.ocr_quality import TEST_DATA, character_error_rate, render_pdf_pages
from tests.script_pages import SCRIPTS, render
from tests.script_pages import truth as script_truth
from tests.speed_set import SpeedFile, page_images, speed_files

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
                page = read_page(engine(route.engine), image, language=route.language, dpi=300, rotation=route.rotation)
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


PROCESSES = 2
OCRMYPDF = Path(__file__).resolve().parents[1] / ".venv-ocrmypdf" / "bin" / "ocrmypdf"
Texts = list[str]
"""One text per page of the speed set, in its order."""

_engines: dict[str, OcrEngine] = {}


def _start_engine(settings: dict[str, Any]) -> None:
    """One rapidocr engine per pool process, built and warm before the clock starts."""
    _engines["rapidocr"] = RapidOcrEngine(**settings)
    _engines["rapidocr"].recognize(Image.new("L", (640, 480), 255), language=None, dpi=300)


def _engine(name: str) -> OcrEngine:
    if name not in _engines:
        _engines[name] = make_engine(name)
    return _engines[name]


@functools.cache
def _router() -> Router:
    return Router(_engine)


def _read(image: Image.Image, document: str) -> str:
    """As a worker's OCR process reads a page of a job that names no language: the script
    detected once per document (routing.py), then orientation, recognition, reading order."""
    route = _router().route("rapidocr", None, image, document=document)
    return read_page(_engine(route.engine), image, language=route.language, dpi=300, rotation=route.rotation).text


def _read_from_file(file: SpeedFile, index: int) -> str:
    """As a program without the pipeline reads a user's file: the page rendered (a PDF at
    300 dpi) or decoded in the OCR process, then read as `_read` reads it."""
    (image,) = page_images(file, only=index)
    return _read(image, file.name)


def _wait(seconds: float) -> None:
    time.sleep(seconds)


def _timed_on_processes(settings: dict[str, Any], read: Callable[..., str], pages: list[Any]) -> tuple[float, Texts]:
    """`read` over the pages on `PROCESSES` processes, each with a warm engine: seconds and texts."""
    with ProcessPoolExecutor(PROCESSES, get_context("spawn"), _start_engine, (settings,)) as pool:
        list(pool.map(_wait, [1.0] * PROCESSES))  # both processes up and warm
        started = time.perf_counter()
        texts = list(pool.map(read, *zip(*pages, strict=True)))
        seconds = time.perf_counter() - started
    return seconds, texts


def engine_alone(files: list[SpeedFile], settings: dict[str, Any]) -> tuple[float, Texts]:
    """Two processes, one runtime thread each, reading the pages already rendered."""
    timed = _timed_on_processes(settings, _read, [(image, file.name) for file in files for image in page_images(file)])
    # The largest of every process this bench has waited for so far.
    print(f"  (peak RSS of an OCR process: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024} MB)")
    return timed


def engine_from_files(files: list[SpeedFile]) -> tuple[float, Texts]:
    """Two processes, one runtime thread each, each page rendered or decoded from its file on
    the clock: the work the pipeline does (ingest's included), without the pipeline."""
    return _timed_on_processes({}, _read_from_file, [(file, i) for file in files for i in range(len(file.truths))])


def pipeline(files: list[SpeedFile]) -> tuple[float, Texts]:
    """`bulkocr up --workers 2` (one OCR process each), from the upload to `completed`, warm."""
    from bench.bench_pipeline import Bench, running_stack, with_bench

    async def run(bench: Bench) -> tuple[float, Texts]:
        warm = await bench.submit({files[0].name: files[0].data})
        await bench.finished(warm)
        own = _own_cpu(bench)
        before = bench.cpu()
        started = time.time()
        job_id = await bench.submit({file.name: file.data for file in files})
        # Polled as seldom as `bulkocr submit --wait` falls back to; the end is the job's own
        # finishing time, so the poll's period does not add to it.
        status = await bench.finished(job_id, poll_s=2.0)
        after = bench.cpu()
        seconds = await bench.finished_at(job_id) - started
        spent = ", ".join(f"{name} {after[name] - before[name]:.1f}" for name in sorted(after))
        workers = ", ".join(f"{name} {own_s:.1f}" for name, own_s in _own_cpu(bench, own).items())
        print(f"  (pipeline CPU seconds during the job: {spent}; worker processes without their OCR: {workers})")
        if status["status"] != "completed":
            raise RuntimeError(f"the job did not complete: {status}")
        texts: Texts = []
        documents = await _documents(bench, job_id)
        for file in files:
            url = f"{bench.stack.gateway_url}/api/bulk/jobs/{job_id}/documents/{documents[file.name]}/text"
            async with bench.http.get(url) as response:
                texts += (await response.text()).split("\f")[: len(file.truths)]
        return seconds, texts

    with running_stack(PROCESSES, BULKOCR_ENGINE="rapidocr") as stack:
        return asyncio.run(with_bench(stack, run))  # type: ignore[no-any-return]


def _own_cpu(bench: Any, since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds of each OCR worker's own process (NSQ, blobs, reports), its OCR processes left out."""
    from bench.bench_pipeline import cpu_seconds

    workers = {name: process.pid for name, process in bench.stack.processes.items() if name.startswith("ocr-worker")}
    return {name: cpu_seconds(pid) - (since or {}).get(name, 0.0) for name, pid in workers.items()}


async def _documents(bench: Any, job_id: str) -> dict[str, str]:
    async with bench.http.get(f"{bench.stack.gateway_url}/api/bulk/jobs/{job_id}/documents") as response:
        body = await response.json()
    return {document["filename"]: document["doc_id"] for document in body["documents"]}


def ocrmypdf(files: list[SpeedFile], *, jobs: int, at_once: int, flags: tuple[str, ...] = ()) -> tuple[float, Texts]:
    """OCRmyPDF on each file (its text from `--sidecar`), `at_once` files at a time, `-j jobs`."""
    if not OCRMYPDF.is_file():
        raise SystemExit(f"{OCRMYPDF} is missing: run `make ocrmypdf` for the side-by-side")
    environment = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # Tesseract's own threads would oversubscribe
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, file in enumerate(files):
            path = Path(folder) / f"{index:02d}-{file.name}"
            path.write_bytes(file.data)
            paths.append(path)

        def one(path: Path) -> list[str]:
            sidecar = path.with_suffix(".txt")
            command = [str(OCRMYPDF), "-q", "-j", str(jobs), "--output-type", "pdf", "--sidecar", str(sidecar), *flags]
            subprocess.run([*command, str(path), str(path.with_suffix(".out.pdf"))], check=True, env=environment)
            return sidecar.read_text(encoding="utf-8").split("\f")

        started = time.perf_counter()
        with ThreadPoolExecutor(at_once) as pool:
            read = list(pool.map(one, paths))
        seconds = time.perf_counter() - started
    return seconds, [text for file, pages in zip(files, read, strict=True) for text in pages[: len(file.truths)]]


def speed() -> None:
    # BENCH_ROUNDS=2 submits the set twice (a longer job: less of the run is its start and end).
    rounds = int(os.environ.get("BENCH_ROUNDS", "1"))
    files = [
        # Bytes after a file's end (PDF %%EOF, PNG IEND, JPEG EOI) are ignored by readers and
        # make each copy a new file: a job reads a file it holds twice only once.
        SpeedFile(f"r{number}-{file.name}", file.data + f"\n{number}\n".encode(), file.truths) if number > 1 else file
        for number in range(1, rounds + 1)
        for file in speed_files()
    ]
    truths = [truth for file in files for truth in file.truths]
    names = [
        f"{file.name} p{n}" if len(file.truths) > 1 else file.name
        for file in files
        for n in range(1, len(file.truths) + 1)
    ]
    onnxruntime = {"runtime": "onnxruntime"}
    systems: dict[str, Callable[[], tuple[float, Texts]]] = {
        "bulkocr engine alone, 2 processes, runtime chosen for the CPU (default)": lambda: engine_alone(files, {}),
        "bulkocr engine alone from the files, 2 processes, pages rendered on the clock": lambda: engine_from_files(
            files
        ),
        "bulkocr engine alone, 2 processes, OpenVINO, models as shipped": lambda: engine_alone(
            files, {"runtime": "openvino"}
        ),
        "bulkocr engine alone, 2 processes, onnxruntime, int8 detector and recogniser": lambda: engine_alone(
            files, onnxruntime
        ),
        "bulkocr engine alone, 2 processes, onnxruntime, int8 recogniser only": lambda: engine_alone(
            files, {**onnxruntime, "int8_detector": False}
        ),
        "bulkocr engine alone, 2 processes, onnxruntime, fp32 models as shipped": lambda: engine_alone(
            files, {**onnxruntime, "int8_detector": False, "int8_recognizer": False}
        ),
        "bulkocr pipeline, `bulkocr up --workers 2`": lambda: pipeline(files),
        "OCRmyPDF 17 + Tesseract, `-j 2`": lambda: ocrmypdf(files, jobs=2, at_once=1),
        "OCRmyPDF, `-j 1`, two files at a time": lambda: ocrmypdf(files, jobs=1, at_once=2),
        "OCRmyPDF, `-j 2 --rotate-pages --deskew`": lambda: ocrmypdf(
            files, jobs=2, at_once=1, flags=("--rotate-pages", "--deskew")
        ),
    }
    wanted = os.environ.get("BENCH_SYSTEMS")
    rates: dict[str, list[float | None]] = {}
    print(f"{len(truths)} pages, {PROCESSES} processes\n")
    print("| system | s | pages/min | mean CER | worst CER |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, measure in systems.items():
        if wanted and not any(word in label for word in wanted.split(",")):
            continue
        seconds, texts = measure()
        rates[label] = [
            character_error_rate(text, truth) if truth else None for text, truth in zip(texts, truths, strict=True)
        ]
        scored = [rate for rate in rates[label] if rate is not None]
        print(
            f"| {label} | {seconds:.1f} | {60 * len(truths) / seconds:.1f} "
            f"| {100 * statistics.mean(scored):.2f} % | {100 * max(scored):.2f} % |",
            flush=True,
        )
    print("\n| page | " + " | ".join(rates) + " |")
    print("| --- |" + " ---: |" * len(rates))
    for index, name in enumerate(names):
        cells = [f"{100 * rate:.2f} %" if (rate := row[index]) is not None else "n/a" for row in rates.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if "--scripts" in sys.argv[1:]:
        scripts()
    elif "--speed" in sys.argv[1:]:
        speed()
    else:
        main()
