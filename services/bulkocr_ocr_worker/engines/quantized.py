"""int8 versions of the PP-OCRv6 small models, derived on this machine from the fp32 files the
rapidocr wheel ships, never downloaded (docs/design-notes.md has the measurements).

- The recogniser's matrix products (its sequence mixer and its 18,000-character output
  layer) run in int8 by onnxruntime's dynamic quantisation: activations are quantised per
  call, so nothing but the weights is needed.
- The detector's convolutions run in int8 by static quantisation: each activation's range
  was measured once on real scans (`bench/calibrate_detector.py`) and ships beside this
  module as `detector_ranges.json`, so deriving needs no calibration run.

Deriving takes under a second and gives the same bytes every time, so each process derives
a model once into a per-user cache named by everything that went in.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DETECTOR_RANGES = Path(__file__).with_name("detector_ranges.json")
# Part of the cache names: change them when a recipe below changes.
RECOGNISER_RECIPE = "matmul-int8-v1"
DETECTOR_RECIPE = "conv-int8-qdq-v1"
# Per-channel QDQ needs DequantizeLinear's `axis`, which came with opset 13 (the wheel's models are 11).
QDQ_OPSET = 13


def int8_matmul_model(source: Path, cache_dir: Path | None = None) -> Path:
    """The recogniser with its MatMul weights in int8."""

    def derive(model: Any, target: str, quantization: Any) -> None:
        quantization.quantize_dynamic(
            model, target, op_types_to_quantize=["MatMul"], weight_type=quantization.QuantType.QInt8
        )

    return _derived(source, RECOGNISER_RECIPE, derive, cache_dir)


def detector_quantisation(quantization: Any) -> dict[str, Any]:
    """The static quantisation settings, shared by deriving and by the calibration script."""
    return {
        "quant_format": quantization.QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": quantization.QuantType.QUInt8,
        "weight_type": quantization.QuantType.QInt8,
        "calibrate_method": quantization.CalibrationMethod.MinMax,
        "op_types_to_quantize": ["Conv"],
    }


def int8_detector_model(source: Path, cache_dir: Path | None = None, ranges: Path = DETECTOR_RANGES) -> Path:
    """The detector with its convolutions in int8, at the activation ranges in `ranges`."""

    def derive(model: Any, target: str, quantization: Any) -> None:
        upgraded = importlib.import_module("onnx.version_converter").convert_version(model, QDQ_OPSET)
        quantization.quantize_static(
            upgraded, target, None, calibration_cache_path=ranges, **detector_quantisation(quantization)
        )

    return _derived(source, f"{DETECTOR_RECIPE}.{_digest(ranges)}", derive, cache_dir)


def _derived(source: Path, recipe: str, derive: Callable[[Any, str, Any], None], cache_dir: Path | None) -> Path:
    """`source` derived by `derive(model, target path, onnxruntime.quantization)`, once:
    reused while the source, onnxruntime and the recipe stay the same."""
    folder = cache_dir or Path(tempfile.gettempdir()) / f"bulkocr-models-{os.getuid()}"
    runtime = importlib.metadata.version("onnxruntime")
    target = folder / f"{source.stem}.{recipe}.ort{runtime}.{_digest(source)}.onnx"
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
        # Given a path, the quantiser writes a shape-inferred copy beside the source (in the
        # read-only wheel, raced by every process); given the model, into a temporary folder.
        model = onnx.load(source)
        logging.disable(logging.WARNING)  # its advice to pre-process first changes nothing here
        derive(model, partial, quantization)
        os.replace(partial, target)
    finally:
        logging.disable(was_disabled)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
