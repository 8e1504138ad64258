"""Measure the detector's activation ranges for its int8 version and write them to
services/bulkocr_ocr_worker/engines/detector_ranges.json (run again after a model change).

    .venv/bin/python bench/calibrate_detector.py

The pages are those of tests/data/multipage.pdf (a book page, charts, two-column print, a
landscape page) that fit under 5,000 px at 300 dpi, and tests/data/blank.pdf; none of them is
in the speed set (`bench/bench_ocr.py --speed`) the result is judged on. Each is fed to the
fp32 detector exactly as the engine feeds it (its long side limited to the engine's detector
side), at full size and at the size orientation's check reads. Without a blank page the int8
detector saw a whole blank 640 x 480 image as one line of text.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.ocr_quality

from tests.ocr_quality import TEST_DATA, render_pdf_pages

from bulkocr_ocr_worker.engines import quantized
from bulkocr_ocr_worker.engines.rapidocr import RAPIDOCR_DET_MODEL, RapidOcrEngine, bundled_models
from bulkocr_ocr_worker.orientation import DETECTION_LONG_SIDE

MAX_SIDE = 5000
"""multipage.pdf's 30-inch poster page is left out: the engine reads such pages in tiles."""


def detector_inputs() -> list[numpy.ndarray[Any, Any]]:
    """What the engine hands its detector for each calibration page, captured on the way in."""
    session = importlib.import_module("rapidocr.inference_engine.onnxruntime.main").OrtInferSession
    captured: list[numpy.ndarray[Any, Any]] = []
    run = session.__call__

    def capture(self: Any, batch: numpy.ndarray[Any, Any]) -> Any:
        if batch.ndim == 4 and batch.shape[2] != 48:  # the recogniser's lines are 48 px high
            captured.append(batch.copy())
        return run(self, batch)

    session.__call__ = capture
    try:
        engine = RapidOcrEngine(int8_detector=False, runtime="onnxruntime")  # the session patched above
        pages = render_pdf_pages(TEST_DATA / "multipage.pdf") + render_pdf_pages(TEST_DATA / "blank.pdf")
        for page in pages:
            if max(page.size) <= MAX_SIDE:
                engine.find_text_lines(page)
                engine.find_text_lines(page.reduce(-(-max(page.size) // DETECTION_LONG_SIDE)))
    finally:
        session.__call__ = run
    return captured


def main() -> None:
    onnx = importlib.import_module("onnx")
    quantization = importlib.import_module("onnxruntime.quantization")
    inputs = iter(detector_inputs())

    class Pages(quantization.CalibrationDataReader):  # type: ignore[misc,name-defined]  # a module found at run time
        def get_next(self) -> dict[str, Any] | None:
            batch = next(inputs, None)
            return None if batch is None else {"x": batch}

    source = onnx.load(bundled_models() / RAPIDOCR_DET_MODEL)
    upgraded = onnx.version_converter.convert_version(source, quantized.QDQ_OPSET)
    quantized.DETECTOR_RANGES.unlink(missing_ok=True)  # else the quantiser would read the old ranges
    with tempfile.TemporaryDirectory() as folder:
        quantization.quantize_static(
            upgraded,
            f"{folder}/detector.onnx",
            Pages(),
            calibration_cache_path=quantized.DETECTOR_RANGES,
            **quantized.detector_quantisation(quantization),
        )
    # The quantiser writes the tensors in no set order: sorted, a rerun on the same model gives the same file.
    ranges = json.loads(quantized.DETECTOR_RANGES.read_text())
    quantized.DETECTOR_RANGES.write_text(json.dumps(ranges, sort_keys=True, indent=1) + "\n")
    print(f"wrote {quantized.DETECTOR_RANGES}")


if __name__ == "__main__":
    main()
