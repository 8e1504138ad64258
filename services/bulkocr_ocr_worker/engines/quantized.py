"""A recogniser whose matrix products run in int8: derived on this machine from the fp32 model
the rapidocr wheel ships, never downloaded.

PP-OCRv6 small's recogniser ends in a product with its 18,000-character vocabulary at every
step of a line; onnxruntime's dynamic int8 quantisation of the MatMul weights (activations
quantised per call) reads a dense page about a tenth faster at the same character error rate
(docs/benchmarks.md). Its convolutions stay fp32: quantised convolutions were slower and less
accurate there. Deriving takes about 0.2 s and gives the same bytes every time, so each
process derives it once into a per-user cache named by what went in.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import logging
import os
import tempfile
from pathlib import Path

# Part of the cache name: change it when the recipe below changes.
RECIPE = "matmul-int8-v1"


def int8_matmul_model(source: Path, cache_dir: Path | None = None) -> Path:
    """The int8-MatMul version of `source`, derived once into `cache_dir` (or a temporary
    folder of this user's) and reused while the source, onnxruntime and the recipe stay."""
    folder = cache_dir or Path(tempfile.gettempdir()) / f"bulkocr-models-{os.getuid()}"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    runtime = importlib.metadata.version("onnxruntime")
    target = folder / f"{source.stem}.{RECIPE}.ort{runtime}.{digest}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written beside the target and renamed: processes starting together never read half a file.
    handle, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(handle)
    was_disabled = logging.root.manager.disable
    try:
        onnx = importlib.import_module("onnx")
        quantization = importlib.import_module("onnxruntime.quantization")
        # Given a path, the tool writes a shape-inferred copy beside the source (in the
        # read-only wheel, raced by every process); given the model, into a temporary folder.
        model = onnx.load(source)
        logging.disable(logging.WARNING)  # its advice to pre-process does not apply to MatMul weights
        quantization.quantize_dynamic(
            model, partial, op_types_to_quantize=["MatMul"], weight_type=quantization.QuantType.QInt8
        )
        os.replace(partial, target)
    finally:
        logging.disable(was_disabled)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target
