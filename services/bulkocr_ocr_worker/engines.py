"""OCR engines behind one blocking interface, and the whole recognition of one page.

The service calls `read_page(engine, image, language=..., dpi=...)`: it turns the page upright
(see orientation.py), recognises it, and returns lines grouped into blocks in reading order.
Engines are built once per worker process with `make_engine(name, **settings)`.

Engines are single-threaded on purpose: the service parallelises with processes, and one
onnxruntime thread per process is as fast in total as more threads and keeps memory flat.
Third-party OCR packages are imported inside the engine that needs them, so this module
(and NullEngine) works without the `ocr` extra.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from bulkocr.page_model import Box, Line, PageText, Word
from bulkocr_ocr_worker.orientation import find_orientation, greyscale_or_rgb, turn_clockwise
from bulkocr_ocr_worker.reading_order import PlacedLine, Quad, order_lines
from bulkocr_ocr_worker.tiling import TextLine, Tile, TilingSettings, plan_tiles, read_tiled

if TYPE_CHECKING:
    from rapidocr import RapidOCR

RAPIDOCR_DET_MODEL = "PP-OCRv6_det_small.onnx"
RAPIDOCR_REC_MODEL = "PP-OCRv6_rec_small.onnx"


class EngineUnavailableError(RuntimeError):
    """The engine cannot be built here: its package or model files are missing."""


class OcrEngine(Protocol):
    """What every engine does (the interface test, tests/integration/test_engine_interface.py,
    holds each one to it). Blocking and CPU-bound: call it from the service's executor."""

    def rotation(self, image: Image.Image) -> int:
        """Degrees (0, 90, 180, 270) to turn the image clockwise so its text stands upright;
        0 from an engine that cannot tell."""
        ...

    def recognize(self, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
        """The text of an upright page."""
        ...


def read_page(engine: OcrEngine, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
    """Orientation, recognition and reading order for one page image.

    Coordinates in the result refer to the page turned upright; `rotation` says by how much
    the given image was turned clockwise to get there.
    """
    image = greyscale_or_rgb(image)
    rotation = engine.rotation(image)
    page = engine.recognize(turn_clockwise(image, rotation), language=language, dpi=dpi)
    return page.model_copy(update={"rotation": rotation})


class NullEngine:
    """Recognises nothing: a page of the right size with no text. For plumbing tests and benchmarks;
    `seconds_per_page` makes it stand in for a slow engine (crash tests kill a worker mid-page)."""

    name = "null"

    def __init__(self, *, seconds_per_page: float = 0.0) -> None:
        self._seconds_per_page = seconds_per_page

    def rotation(self, image: Image.Image) -> int:
        return 0  # it reads nothing, so it cannot tell

    def recognize(self, image: Image.Image, *, language: str | None, dpi: int) -> PageText:
        if self._seconds_per_page:
            time.sleep(self._seconds_per_page)
        return PageText(width=image.width, height=image.height, dpi=dpi, engine=self.name)


class RapidOcrEngine:
    """PP-OCRv6 small detection and recognition on onnxruntime, through rapidocr 3.10.

    The models ship inside the rapidocr wheel; they are passed by path so rapidocr never
    reaches its download code. The recogniser is multilingual (Latin scripts, Chinese,
    Japanese), so `language` needs no model switch and is accepted only for the interface.
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
    ) -> None:
        try:
            rapidocr = importlib.import_module("rapidocr")
        except ImportError as error:
            raise EngineUnavailableError("rapidocr is not installed: install bulkocr with the `ocr` extra") from error
        version = importlib.metadata.version("rapidocr")
        model_dir = Path(inspect.getfile(rapidocr)).parent / "models"
        det_model, rec_model = model_dir / RAPIDOCR_DET_MODEL, model_dir / RAPIDOCR_REC_MODEL
        missing = [str(path) for path in (det_model, rec_model) if not path.is_file()]
        if missing:
            # A rapidocr release without bundled models would try to download them: refuse loudly.
            raise EngineUnavailableError(f"rapidocr {version} lacks bundled models: {missing}")

        self.version = f"rapidocr {version} PP-OCRv6 small"
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
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": threads,
            }
        )
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
        placed = [_placed_line(line.quad, line.text, line.score, line.words, image.size) for line in lines]
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
                word_boxes = tuple((word, float(word_score), _quad(points)) for word, word_score, points in words)
                lines.append(TextLine(quad=_quad(quad), text=text, score=float(score), words=word_boxes))
        return lines

    def find_text_lines(self, image: Image.Image) -> list[Quad]:
        """Detector only: line quadrilaterals in the image's pixel coordinates."""
        from rapidocr.ch_ppocr_det import TextDetOutput

        result = self._ocr(greyscale_or_rgb(image), use_det=True, use_cls=False, use_rec=False, return_word_box=False)
        if not isinstance(result, TextDetOutput) or result.boxes is None:
            return []
        return [_quad(points) for points in result.boxes.tolist()]

    def read_text_line(self, image: Image.Image) -> tuple[str, float]:
        """Recogniser only, on an image that holds one horizontal line."""
        from rapidocr.ch_ppocr_rec import TextRecOutput

        result = self._ocr(greyscale_or_rgb(image), use_det=False, use_cls=False, use_rec=True, return_word_box=False)
        if not isinstance(result, TextRecOutput) or not result.txts:
            return "", 0.0
        return result.txts[0], _confidence(result.scores[0])


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
                placed.append(_placed_line(polygon.tolist(), text, score, (), image.size))
        return PageText(
            width=image.width, height=image.height, dpi=dpi, engine=self.version, blocks=order_lines(placed)
        )


def _tesseract(**settings: Any) -> OcrEngine:
    # Its own module (it imports this one for the shared errors).
    from bulkocr_ocr_worker.tesseract_engine import TesseractEngine

    return TesseractEngine(**settings)


ENGINES: dict[str, Callable[..., OcrEngine]] = {
    # One entry per name in contracts.EngineName (tests/integration/test_engine_interface.py checks).
    NullEngine.name: NullEngine,
    RapidOcrEngine.name: RapidOcrEngine,
    "tesseract": _tesseract,
    PaddleEngine.name: PaddleEngine,
}


def make_engine(name: str, **settings: Any) -> OcrEngine:
    """Build the engine registered under `name` with its keyword settings."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise EngineUnavailableError(f"unknown OCR engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None
    return factory(**settings)


def _quad(points: Sequence[Sequence[float]]) -> Quad:
    a, b, c, d = ((float(x), float(y)) for x, y in points)
    return (a, b, c, d)


def _confidence(score: float) -> float:
    """Engines report float32 scores that can stray a hair outside 0..1."""
    return min(1.0, max(0.0, float(score)))


def _box(points: Sequence[Sequence[float]], size: tuple[int, int]) -> Box:
    """Bounding box of a polygon, clipped to the page: detector boxes are padded past its edges."""
    width, height = size
    box = Box.around([(float(x), float(y)) for x, y in points])
    return Box(
        x0=min(max(box.x0, 0), width),
        y0=min(max(box.y0, 0), height),
        x1=min(max(box.x1, 0), width),
        y1=min(max(box.y1, 0), height),
    )


def _placed_line(
    quad: Sequence[Sequence[float]],
    text: str,
    score: float,
    words: Sequence[tuple[str, float, Sequence[Sequence[float]]]],
    size: tuple[int, int],
) -> PlacedLine:
    line = Line(
        text=text,
        box=_box(quad, size),
        confidence=_confidence(score),
        words=[
            Word(text=word, box=_box(word_quad, size), confidence=_confidence(word_score))
            for word, word_score, word_quad in words
        ],
    )
    return PlacedLine(line=line, quad=_quad(quad))
