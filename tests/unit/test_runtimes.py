"""Which runtime reads the pages: `auto` takes OpenVINO only where the CPU computes in bf16."""

from __future__ import annotations

import pytest

from bulkocr_ocr_worker.engines import runtimes
from bulkocr_ocr_worker.engines.runtimes import Runtime, choose_runtime


@pytest.mark.parametrize(
    ("precision", "chosen"),
    [
        ("bf16", Runtime("openvino", "bf16")),
        # OpenVINO in fp32 was no faster than onnxruntime's int8 models on an AVX2 CPU.
        ("fp32", Runtime("onnxruntime", "fp32")),
        (None, Runtime("onnxruntime", "fp32")),
    ],
)
def test_auto_takes_openvino_only_where_the_cpu_computes_in_bf16(
    monkeypatch: pytest.MonkeyPatch, precision: str | None, chosen: Runtime
) -> None:
    monkeypatch.setattr(runtimes, "_openvino_precision", lambda: precision)

    assert choose_runtime("auto") == chosen


def test_a_named_runtime_is_taken_whatever_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "_openvino_precision", lambda: "fp32")

    assert choose_runtime("openvino") == Runtime("openvino", "fp32")
    assert choose_runtime("onnxruntime") == Runtime("onnxruntime", "fp32")


def test_openvino_named_but_missing_and_an_unknown_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "_openvino_precision", lambda: None)

    with pytest.raises(ImportError, match="openvino runtime is not installed"):
        choose_runtime("openvino")
    with pytest.raises(ValueError, match="known: auto, onnxruntime, openvino"):
        choose_runtime("tensorrt")  # type: ignore[arg-type]
