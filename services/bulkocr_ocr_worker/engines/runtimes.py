"""Which inference runtime runs the PP-OCR models, and rapidocr's settings for it.

- OpenVINO on a CPU that computes in bfloat16 natively (AMX or AVX-512 BF16): it runs the
  shipped fp32 models in bf16, each call about three times as fast as onnxruntime's int8
  models, twice the pages a minute, at the same error rate (docs/benchmarks.md).
- onnxruntime elsewhere, with the int8 models (quantized.py): OpenVINO in fp32 was no faster
  than onnxruntime in fp32 on an AVX2 CPU, and int8 is faster still there.

`auto` picks between them by asking OpenVINO what the CPU does; the choice is made once per
process, at the engine's start.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Literal

RuntimeName = Literal["auto", "onnxruntime", "openvino"]
RUNTIMES: tuple[RuntimeName, ...] = ("auto", "onnxruntime", "openvino")


@dataclass(frozen=True)
class Runtime:
    name: Literal["onnxruntime", "openvino"]
    precision: str
    """What the models compute in: "fp32" for onnxruntime (its int8 parts are named apart),
    OpenVINO's own choice otherwise ("bf16" on CPUs that have it)."""

    @property
    def label(self) -> str:
        """For the engine's version string, so a page says what read it."""
        version = importlib.metadata.version(self.name)
        return f"{self.name} {version}" + (f" {self.precision}" if self.name == "openvino" else "")


def choose_runtime(requested: RuntimeName) -> Runtime:
    """The runtime `requested` names, or for `auto` the faster one on this CPU."""
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r}; known: {', '.join(RUNTIMES)}")
    if requested == "onnxruntime":
        return Runtime("onnxruntime", "fp32")
    precision = _openvino_precision()
    if requested == "openvino":
        if precision is None:
            raise ImportError("the openvino runtime is not installed: install bulkocr with the `ocr` extra")
        return Runtime("openvino", precision)
    if precision == "bf16":
        return Runtime("openvino", precision)
    return Runtime("onnxruntime", "fp32")


def rapidocr_params(runtime: Runtime, threads: int) -> dict[str, Any]:
    """rapidocr's settings that put its detector and recogniser on `runtime` with `threads`."""
    if runtime.name == "onnxruntime":
        return {
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": threads,
        }
    # rapidocr's own OpenVINO sessions only read the recogniser's characters: the engine
    # replaces them with openvino_models', which take `threads` (rapidocr cannot bound their memory).
    engine_type = importlib.import_module("rapidocr").EngineType.OPENVINO
    return {"Det.engine_type": engine_type, "Rec.engine_type": engine_type}


def _openvino_precision() -> str | None:
    """What OpenVINO computes fp32 models in on this CPU by default, or None without OpenVINO."""
    try:
        openvino = importlib.import_module("openvino")
    except ImportError:
        return None
    hint: str = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    return {"f16": "fp16", "f32": "fp32"}.get(hint, hint)
