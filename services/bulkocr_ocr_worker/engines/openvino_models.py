"""The PP-OCR models on OpenVINO, called as rapidocr calls its sessions (an array in, the
first output out), with memory bounded over a long run.

OpenVINO prepares its kernels once per input shape and keeps them. Line images come in
every width, so a worker kept a shape per width it met: 1.6 GB after 400 widths, and
growing. Two bounds keep it flat (docs/design-notes.md has the figures):
- the recogniser's inputs are padded to a multiple of `WIDTH_STEP` pixels, as rapidocr pads
  a batch, and its output is cut back to the steps of the real width, so the text and word
  boxes are those of the unpadded line;
- at most `SHAPE_CACHE_ENTRIES` shapes are kept per model.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy

WIDTH_STEP = 64
"""Recogniser inputs are padded to a multiple of this width: 45 shapes from 320 to 3,200 px."""
SHAPE_CACHE_ENTRIES = 1000
"""OpenVINO's entries, several per shape: 200 missed already on the speed set's pages."""
RECOGNISER_STRIDE = 8
"""The recogniser's output has one step per 8 px of input width."""


class OpenVinoModel:
    """One model compiled for `threads` threads of the CPU. With `share_output`, a call
    returns the request's own output buffer, which the next call overwrites: only for a caller
    done with it by then. rapidocr's recogniser is: it takes each step's best character and
    its score at once. The copy it spares is 6-9 MB a line (steps x 18,710 characters), 1.7-2.3
    ms of a 10-19 ms line."""

    def __init__(self, path: Path, threads: int, *, share_output: bool = False) -> None:
        openvino = importlib.import_module("openvino")
        core = openvino.Core()
        compiled = core.compile_model(
            core.read_model(path),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                # Pinned, the thread of every OCR process on a node would share the first core.
                "ENABLE_CPU_PINNING": False,
                "CPU_RUNTIME_CACHE_CAPACITY": SHAPE_CACHE_ENTRIES,
            },
        )
        self._request = compiled.create_infer_request()
        self._share_output = share_output

    def __call__(self, batch: numpy.ndarray[Any, Any]) -> numpy.ndarray[Any, Any]:
        output: numpy.ndarray[Any, Any] = self._request.infer({0: batch}, share_outputs=self._share_output)[0]
        return output


class PaddedWidths:
    """The recogniser, fed widths rounded up to `WIDTH_STEP` so few input shapes occur."""

    def __init__(self, model: OpenVinoModel) -> None:
        self._model = model

    def __call__(self, batch: numpy.ndarray[Any, Any]) -> numpy.ndarray[Any, Any]:
        width = batch.shape[-1]
        padded = -(-width // WIDTH_STEP) * WIDTH_STEP
        if padded != width:
            # Zero is the normalised grey rapidocr pads a batch's shorter lines with.
            batch = numpy.pad(batch, [(0, 0)] * (batch.ndim - 1) + [(0, padded - width)])
        # The steps the unpadded width gives: its width over the stride, a half step rounded down.
        steps = (width + RECOGNISER_STRIDE // 2 - 1) // RECOGNISER_STRIDE
        return self._model(batch)[:, :steps]
