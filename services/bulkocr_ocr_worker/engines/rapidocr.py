"""PP-OCRv6 small through rapidocr: the default engine (Latin scripts,
Chinese, Japanese). Big pages with small text are read in tiles (tiling.py)."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from bulkocr.page_model import PageText
from bulkocr_ocr_worker.engines.base import EngineUnavailableError
from bulkocr_ocr_worker.engines.lines import as_quad, clipped_confidence, page_sized, placed_line
from bulkocr_ocr_worker.engines.openvino_models import OpenVinoModel, PaddedWidths
from bulkocr_ocr_worker.engines.quantized import int8_detector_model, int8_matmul_model
from bulkocr_ocr_worker.engines.runtimes import RuntimeName, choose_runtime, rapidocr_params
from bulkocr_ocr_worker.orientation import find_orientation, greyscale_or_rgb
from bulkocr_ocr_worker.reading_order import Quad, order_lines
from bulkocr_ocr_worker.tiling import TextLine, Tile, TilingSettings, plan_tiles, read_tiled

if TYPE_CHECKING:
    from rapidocr import RapidOCR

RAPIDOCR_DET_MODEL = "PP-OCRv6_det_small.onnx"
RAPIDOCR_REC_MODEL = "PP-OCRv6_rec_small.onnx"


def bundled_models() -> Path:
    """The models folder inside the installed rapidocr wheel."""
    return Path(inspect.getfile(importlib.import_module("rapidocr"))).parent / "models"


class RapidOcrEngine:
    """PP-OCRv6 small detection and recognition through rapidocr 3.10, on the runtime
    `runtime` names (runtimes.py: `auto` picks OpenVINO on CPUs that compute in bf16).

    The models ship inside the rapidocr wheel; they are passed by path so rapidocr never
    reaches its download code. The recogniser is multilingual (Latin scripts, Chinese,
    Japanese), so `language` needs no model switch and is accepted only for the interface.
    On onnxruntime, with `int8_recognizer` the recogniser's matrix products run in int8, with
    `int8_detector` the detector's convolutions (quantized.py); OpenVINO runs the shipped
    models, which it computes in bf16 faster than either int8 model.
    """

    name = "rapidocr"

    def __init__(
        self,
        *,
        det_limit_side_len: int = 1280,
        max_side_len: int = 2000,
        text_score: float = 0.5,
        threads: int = 1,
        tiling: TilingSettings | None = None,
        int8_recognizer: bool = True,
        int8_detector: bool = True,
        runtime: RuntimeName = "auto",
    ) -> None:
        try:
            rapidocr = importlib.import_module("rapidocr")
        except ImportError as error:
            raise EngineUnavailableError("rapidocr is not installed: install bulkocr with the `ocr` extra") from error
        version = importlib.metadata.version("rapidocr")
        model_dir = bundled_models()
        det_model, rec_model = model_dir / RAPIDOCR_DET_MODEL, model_dir / RAPIDOCR_REC_MODEL
        missing = [str(path) for path in (det_model, rec_model) if not path.is_file()]
        if missing:
            # A rapidocr release without bundled models would try to download them: refuse loudly.
            raise EngineUnavailableError(f"rapidocr {version} lacks bundled models: {missing}")
        try:
            chosen = choose_runtime(runtime)
        except ImportError as error:
            raise EngineUnavailableError(str(error)) from error
        int8 = []
        if chosen.name == "onnxruntime":
            int8 = [part for part, wanted in (("det", int8_detector), ("rec", int8_recognizer)) if wanted]
        try:
            if "det" in int8:
                det_model = int8_detector_model(det_model)
            if "rec" in int8:
                rec_model = int8_matmul_model(rec_model)
        except ImportError as error:
            raise EngineUnavailableError(f"the int8 models need the onnx package: {error}") from error

        self.runtime = chosen
        self.version = f"rapidocr {version} PP-OCRv6 small on {chosen.label}" + (
            f" int8 {'+'.join(int8)}" if int8 else ""
        )
        self._det_limit_side_len = det_limit_side_len
        self._tiling = tiling or TilingSettings()
        self._ocr: RapidOCR = rapidocr.RapidOCR(
            params={
                "Global.log_level": "error",  # rapidocr logs to stderr itself; keep it to real failures
                "Global.use_cls": False,  # the 0/180 line classifier flips good lines on upright pages
                "Global.return_word_box": True,
                "Global.text_score": text_score,
                # Pages above this long side are shrunk before detection and line cropping.
                "Global.max_side_len": max_side_len,
                "Det.model_path": str(det_model),
                "Rec.model_path": str(rec_model),
                # Detect on a copy whose long side is at most 1280: on linn.png 960 merges the two
                # columns' lines, 1024 still separates them, 1280 leaves a margin (ocr-notes).
                "Det.limit_type": "max",
                "Det.limit_side_len": det_limit_side_len,
                "Rec.rec_batch_num": 1,  # larger batches pad short lines to the longest: slower on CPU
                **rapidocr_params(chosen, threads),
            }
        )
        if chosen.name == "openvino":
            # rapidocr 3.10 builds its models on first use (its `_load_*` methods); built now,
            # their sessions are swapped for ones whose memory stays bounded (openvino_models.py).
            self._ocr._load_det_model().session = OpenVinoModel(det_model, threads)
            self._ocr._load_rec_model().session = PaddedWidths(OpenVinoModel(rec_model, threads, share_output=True))
        cv2 = importlib.import_module("cv2")
        cv2.setNumThreads(threads)  # OpenCV's resize/warp pool would otherwise take every core

    def rotation(self, image: Image.Image) -> int:
        """From its own detector and recogniser (orientation.py)."""
        return find_orientation(self, image).rotation

    def recognize(self, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
        image = greyscale_or_rgb(image)
        tiles: list[Tile] = []
        if max(image.size) > self._tiling.above_side:
            # Only big pages pay for this extra detector pass; it tells small text from a high dpi (tiling.py).
            tiles = plan_tiles(image.size, self.find_text_lines(image), self._det_limit_side_len, self._tiling)
        lines = read_tiled(image, tiles, self._read_lines) if tiles else self._read_lines(image)
        placed = [placed_line(line.quad, line.text, line.score, line.words, image.size) for line in lines]
        return PageText(
            width=image.width, height=image.height, dpi=dpi, engine=self.version, blocks=order_lines(placed)
        )

    def _read_lines(self, image: Image.Image) -> list[TextLine]:
        """Detection and recognition in one pass over the image (shrunk by rapidocr as configured)."""
        from rapidocr.utils.output import RapidOCROutput

        result = self._ocr(image, use_det=True, use_cls=False, use_rec=True, return_word_box=True)
        lines: list[TextLine] = []
        if isinstance(result, RapidOCROutput) and result.txts and result.boxes is not None and result.scores:
            words_per_line: Sequence[Any] = result.word_results
            if len(words_per_line) != len(result.txts):
                # rapidocr drops lines without word boxes from word_results: never misattribute words.
                words_per_line = [()] * len(result.txts)
            for quad, text, score, words in zip(
                result.boxes.tolist(), result.txts, result.scores, words_per_line, strict=True
            ):
                line_quad = as_quad(quad)
                if page_sized(line_quad, image.size):
                    continue
                word_boxes = tuple((word, float(word_score), as_quad(points)) for word, word_score, points in words)
                lines.append(TextLine(quad=line_quad, text=text, score=float(score), words=word_boxes))
        return lines

    def find_text_lines(self, image: Image.Image) -> list[Quad]:
        """Detector only: line quadrilaterals in the image's pixel coordinates."""
        from rapidocr.ch_ppocr_det import TextDetOutput

        result = self._ocr(greyscale_or_rgb(image), use_det=True, use_cls=False, use_rec=False, return_word_box=False)
        if not isinstance(result, TextDetOutput) or result.boxes is None:
            return []
        quads = [as_quad(points) for points in result.boxes.tolist()]
        return [quad for quad in quads if not page_sized(quad, image.size)]

    def read_text_line(self, image: Image.Image) -> tuple[str, float]:
        """Recogniser only, on an image that holds one horizontal line."""
        from rapidocr.ch_ppocr_rec import TextRecOutput

        result = self._ocr(greyscale_or_rgb(image), use_det=False, use_cls=False, use_rec=True, return_word_box=False)
        if not isinstance(result, TextRecOutput) or not result.txts:
            return "", 0.0
        return result.txts[0], clipped_confidence(result.scores[0])
