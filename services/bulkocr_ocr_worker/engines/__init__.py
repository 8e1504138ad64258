"""OCR engines behind one blocking interface (`base.OcrEngine`), one module each, and the
registry that builds them by name: adding an engine is a module here and a line in ENGINES
(and its name in `contracts.EngineName`); tests/integration/test_engine_interface.py holds
every registered engine to the interface.

Engines are single-threaded on purpose: the service parallelises with processes, and one
runtime thread per process was as fast in total as more threads (measured on onnxruntime)
and keeps memory flat.
Engines are built once per worker process with `make_engine(name, **settings)`. Third-party
OCR packages are imported inside the engine that needs them, so this package (and
NullEngine) works without the `ocr` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkocr_ocr_worker.engines.base import EngineUnavailableError, OcrEngine, read_page
from bulkocr_ocr_worker.engines.null import NullEngine
from bulkocr_ocr_worker.engines.paddle import PaddleEngine
from bulkocr_ocr_worker.engines.rapidocr import RapidOcrEngine
from bulkocr_ocr_worker.engines.tesseract import TesseractEngine

ENGINES: dict[str, Callable[..., OcrEngine]] = {
    # One entry per name in contracts.EngineName (tests/integration/test_engine_interface.py checks).
    NullEngine.name: NullEngine,
    RapidOcrEngine.name: RapidOcrEngine,
    TesseractEngine.name: TesseractEngine,
    PaddleEngine.name: PaddleEngine,
}


def make_engine(name: str, **settings: Any) -> OcrEngine:
    """Build the engine registered under `name` with its keyword settings."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise EngineUnavailableError(f"unknown OCR engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None
    return factory(**settings)


__all__ = [
    "ENGINES",
    "EngineUnavailableError",
    "NullEngine",
    "OcrEngine",
    "PaddleEngine",
    "RapidOcrEngine",
    "TesseractEngine",
    "make_engine",
    "read_page",
]
