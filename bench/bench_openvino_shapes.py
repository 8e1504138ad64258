"""Memory and speed of the OpenVINO models over many input shapes, as a long-running worker meets them.

    .venv/bin/python bench/bench_openvino_shapes.py [bounded|unbounded]

OpenVINO keeps prepared kernels per input shape. The recogniser is fed 400 lines of random
widths from 320 to 3,200 px, twice, then the detector 120 page shapes (long side 1,280, the
other side any multiple of 32 from 320), twice. `bounded` is the engine's setting
(openvino_models.py: widths padded to WIDTH_STEP, SHAPE_CACHE_ENTRIES); `unbounded` is each
model as OpenVINO compiles it by default. Run each in its own process: RSS only grows.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy

from bulkocr_ocr_worker.engines.openvino_models import OpenVinoModel, PaddedWidths
from bulkocr_ocr_worker.engines.rapidocr import RAPIDOCR_DET_MODEL, RAPIDOCR_REC_MODEL, bundled_models

LINES = 400
PAGES = 120


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def default_model(path: Path) -> Any:
    core = importlib.import_module("openvino").Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    return lambda batch: request.infer({0: batch})[0]


def main() -> None:
    bounded = (sys.argv[1:] or ["bounded"])[0] == "bounded"
    models = bundled_models()
    if bounded:
        recogniser: Any = PaddedWidths(OpenVinoModel(models / RAPIDOCR_REC_MODEL, threads=1))
        detector: Any = OpenVinoModel(models / RAPIDOCR_DET_MODEL, threads=1)
    else:
        recogniser, detector = default_model(models / RAPIDOCR_REC_MODEL), default_model(models / RAPIDOCR_DET_MODEL)
    rng = numpy.random.default_rng(0)
    widths = [int(width) for width in rng.integers(320, 3200, LINES)]
    sides = [int(side) * 32 for side in rng.integers(10, 41, PAGES)]
    shapes = [(1280, side) if index % 2 else (side, 1280) for index, side in enumerate(sides)]
    print(f"{'bounded' if bounded else 'unbounded'}: RSS at start {rss_mb()} MB")
    for round_number in (1, 2):
        started = time.perf_counter()
        for width in widths:
            recogniser(rng.standard_normal((1, 3, 48, width)).astype(numpy.float32))
        per_line = (time.perf_counter() - started) / LINES * 1000
        print(f"  recogniser, round {round_number}: {per_line:.1f} ms a line, RSS {rss_mb()} MB", flush=True)
    for round_number in (1, 2):
        started = time.perf_counter()
        for height, width in shapes:
            detector(rng.standard_normal((1, 3, height, width)).astype(numpy.float32))
        per_page = (time.perf_counter() - started) / PAGES * 1000
        print(f"  detector, round {round_number}: {per_page:.0f} ms a page, RSS {rss_mb()} MB", flush=True)


if __name__ == "__main__":
    main()
