"""PaddleOCR 3.x on onnxruntime, from local model directories (an optional install)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from bulkocr.page_model import PageText
from bulkocr_ocr_worker.engines.base import EngineUnavailableError
from bulkocr_ocr_worker.engines.lines import placed_line
from bulkocr_ocr_worker.orientation import greyscale_or_rgb
from bulkocr_ocr_worker.reading_order import PlacedLine, order_lines


class _PaddlePipeline(Protocol):
    """The part of paddleocr.PaddleOCR this module uses."""

    def predict(self, input: Any) -> Sequence[Mapping[str, Any]]: ...


class PaddleEngine:
    """PaddleOCR 3.x on onnxruntime, with models loaded only from the given local directories.

    Each directory holds `inference.yml` (whose `Global.model_name` equals the model name given
    here) and the weights (`inference.onnx`, or Paddle's `inference.json` + `.pdiparams`).
    The optional `paddle` install is about 1.5 GB and a worker needs about 4 GB.
    """

    name = "paddle"

    def __init__(
        self,
        *,
        det_model_dir: str | Path,
        rec_model_dir: str | Path,
        det_model_name: str = "PP-OCRv6_small_det",
        rec_model_name: str = "PP-OCRv6_small_rec",
        det_limit_side_len: int = 1280,
        text_score: float = 0.5,
        threads: int = 1,
    ) -> None:
        for kind, directory in (("detection", det_model_dir), ("recognition", rec_model_dir)):
            if not (Path(directory) / "inference.yml").is_file():
                raise EngineUnavailableError(
                    f"PaddleEngine needs a local {kind} model directory with inference.yml: {directory}"
                )
        # Without this paddlex probes four model hubs (about 27 s offline) before loading anything.
        os.environ["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] = "True"
        try:
            paddleocr = importlib.import_module("paddleocr")
        except ImportError as error:
            raise EngineUnavailableError(
                "paddleocr is not installed: pip install paddleocr==3.7.0 paddlepaddle==3.3.1"
            ) from error
        self._pipeline: _PaddlePipeline = paddleocr.PaddleOCR(
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=False,
            text_detection_model_name=det_model_name,
            text_detection_model_dir=str(det_model_dir),
            text_recognition_model_name=rec_model_name,
            text_recognition_model_dir=str(rec_model_dir),
            text_det_limit_type="max",
            text_det_limit_side_len=det_limit_side_len,
            text_rec_score_thresh=text_score,
            engine="onnxruntime",
            cpu_threads=threads,
        )
        self.version = f"paddleocr {importlib.metadata.version('paddleocr')} {det_model_name}+{rec_model_name}"

    def rotation(self, image: Image.Image) -> int:
        return 0  # reads pages as given: its pipeline's orientation models are off (they need their own files)

    def recognize(self, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
        numpy = importlib.import_module("numpy")
        rgb = greyscale_or_rgb(image).convert("RGB")
        bgr = numpy.ascontiguousarray(numpy.asarray(rgb)[:, :, ::-1])  # paddlex expects OpenCV's order
        results = self._pipeline.predict(bgr)
        placed: list[PlacedLine] = []
        if results:
            result = results[0]
            for polygon, text, score in zip(
                result["rec_polys"], result["rec_texts"], result["rec_scores"], strict=True
            ):
                placed.append(placed_line(polygon.tolist(), text, score, (), image.size))
        return PageText(
            width=image.width, height=image.height, dpi=dpi, engine=self.version, blocks=order_lines(placed)
        )
