"""The engines behind OcrEngine, the factory, and read_page: the real rapidocr engine on real scans."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy
import onnx
import pytest
from PIL import Image

from bulkocr_ocr_worker.engines import (
    ENGINES,
    EngineUnavailableError,
    NullEngine,
    PaddleEngine,
    RapidOcrEngine,
    make_engine,
    read_page,
)
from bulkocr_ocr_worker.engines import rapidocr as rapidocr_module
from bulkocr_ocr_worker.engines.openvino_models import WIDTH_STEP, OpenVinoModel, PaddedWidths
from bulkocr_ocr_worker.engines.quantized import DETECTOR_RANGES, QDQ_OPSET, int8_detector_model, int8_matmul_model
from tests.ocr_quality import TEST_DATA, character_error_rate


@pytest.fixture(scope="module")
def rapidocr_engine() -> RapidOcrEngine:
    return RapidOcrEngine()


@pytest.fixture(scope="module")
def typewriter() -> Image.Image:
    with Image.open(TEST_DATA / "typewriter.png") as image:
        return image.convert("L")


@pytest.fixture(scope="module")
def typewriter_truth() -> str:
    return (TEST_DATA / "typewriter.txt").read_text(encoding="utf-8")


def test_null_engine_returns_an_empty_page_of_the_image_size() -> None:
    """NullEngine recognises nothing but reports the page's size, dpi and its own name."""
    page = NullEngine().recognize(Image.new("L", (300, 200), 255), language="en", dpi=150)

    assert (page.width, page.height, page.dpi, page.engine) == (300, 200, 150, "null")
    assert page.blocks == []
    assert page.text == ""


def test_read_page_takes_null_engine_pages_as_they_are() -> None:
    """read_page does no orientation detection for an engine without a line detector: rotation stays 0."""
    page = read_page(NullEngine(), Image.new("1", (400, 300), 1), language=None, dpi=200)

    assert (page.width, page.height, page.rotation, page.dpi) == (400, 300, 0, 200)


def test_make_engine_builds_registered_engines() -> None:
    """The registry names every engine, and make_engine builds one by name."""
    assert set(ENGINES) == {"null", "rapidocr", "tesseract", "paddle"}
    assert isinstance(make_engine("null"), NullEngine)


def test_make_engine_rejects_unknown_names() -> None:
    """An unknown engine name fails with the list of known ones, as an engine the worker lacks
    (the page's own fault: it fails at once, without retries)."""
    with pytest.raises(EngineUnavailableError, match="known: null, paddle, rapidocr, tesseract"):
        make_engine("tesserakt")


def test_paddle_engine_needs_local_model_directories(tmp_path: Path) -> None:
    """PaddleEngine refuses to start without local model directories, before touching paddleocr."""
    with pytest.raises(EngineUnavailableError, match=r"detection model directory with inference\.yml"):
        PaddleEngine(det_model_dir=tmp_path / "det", rec_model_dir=tmp_path / "rec")


def test_paddle_engine_says_when_paddleocr_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With model directories present but no paddleocr package, PaddleEngine fails with a clear error,
    having first switched off paddlex's model-hub probe."""
    for name in ("det", "rec"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "inference.yml").write_text("Global: {}\n")
    monkeypatch.setitem(sys.modules, "paddleocr", None)  # makes `import paddleocr` fail, installed or not
    monkeypatch.delenv("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", raising=False)

    with pytest.raises(EngineUnavailableError, match="paddleocr is not installed"):
        PaddleEngine(det_model_dir=tmp_path / "det", rec_model_dir=tmp_path / "rec")
    assert os.environ["PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"] == "True"


def test_rapidocr_engine_refuses_to_run_without_bundled_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the rapidocr wheel lacks the PP-OCRv6 files, the engine fails at load instead of downloading."""
    monkeypatch.setattr(rapidocr_module, "RAPIDOCR_DET_MODEL", "PP-OCRv6_det_missing.onnx")

    with pytest.raises(EngineUnavailableError, match="lacks bundled models"):
        RapidOcrEngine()


def test_the_int8_recogniser_is_derived_once_from_the_bundled_model(tmp_path: Path) -> None:
    """Its matrix products run in int8, it is written whole, and the next process reuses it.
    (The accuracy tests read the linn family and the typewriter page with it: it is the default.)"""
    source = rapidocr_module.bundled_models() / rapidocr_module.RAPIDOCR_REC_MODEL

    derived = int8_matmul_model(source, tmp_path)
    written = derived.stat().st_mtime_ns

    graph = onnx.load(derived).graph
    weights = {initializer.name for initializer in graph.initializer}
    assert "MatMulInteger" in {node.op_type for node in graph.node}
    # Products with a learnt weight run in int8; those of two activations (attention) stay fp32.
    assert not [node.name for node in graph.node if node.op_type == "MatMul" and weights & set(node.input)]
    assert int8_matmul_model(source, tmp_path) == derived
    assert derived.stat().st_mtime_ns == written
    assert [path.name for path in tmp_path.iterdir()] == [derived.name]  # no half-written file left


def test_the_int8_detector_is_derived_from_the_shipped_ranges(tmp_path: Path) -> None:
    """Its convolutions run in int8 at the activation ranges measured on real scans, and every
    range names a tensor of the shipped model (a new model needs bench/calibrate_detector.py)."""
    source = rapidocr_module.bundled_models() / rapidocr_module.RAPIDOCR_DET_MODEL

    derived = int8_detector_model(source, tmp_path)

    graph = onnx.load(derived).graph
    quantised_inputs = {node.input[0] for node in graph.node if node.op_type == "Conv"}
    dequantised = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    assert quantised_inputs
    assert quantised_inputs <= dequantised  # every convolution reads int8 data
    ranges = json.loads(DETECTOR_RANGES.read_text())["data"]
    upgraded = onnx.version_converter.convert_version(onnx.load(source), QDQ_OPSET)  # as int8_detector_model does
    tensors = {output for node in upgraded.graph.node for output in node.output} | {"x"}
    assert ranges
    assert set(ranges) <= tensors
    assert int8_detector_model(source, tmp_path) == derived


@pytest.mark.parametrize(
    ("derive", "model"),
    [
        (int8_matmul_model, rapidocr_module.RAPIDOCR_REC_MODEL),
        (int8_detector_model, rapidocr_module.RAPIDOCR_DET_MODEL),
    ],
)
def test_worker_processes_starting_together_derive_one_whole_model(
    tmp_path: Path, derive: Callable[[Path, Path], Path], model: str
) -> None:
    """Every OCR process of a node derives the models at start into the same cache: none reads a
    half-written file, none fails, and nothing is written into the (read-only) wheel."""
    source = rapidocr_module.bundled_models() / model
    wheel_before = sorted(source.parent.iterdir())

    with ProcessPoolExecutor(4, get_context("spawn")) as pool:
        derived = list(pool.map(derive, [source] * 4, [tmp_path] * 4))

    assert len(set(derived)) == 1
    onnx.checker.check_model(derived[0])
    assert sorted(source.parent.iterdir()) == wheel_before
    assert [path.name for path in tmp_path.iterdir()] == [derived[0].name]


def _line_batch(page: Image.Image, quad: Sequence[tuple[float, float]]) -> numpy.ndarray[Any, Any]:
    """A detected line as rapidocr hands it to the recogniser: 48 px high, scaled to -1..1, no padding."""
    xs, ys = [x for x, _ in quad], [y for _, y in quad]
    line = page.convert("RGB").crop((int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1))
    line = line.resize((max(math.ceil(48 * line.width / line.height), 8), 48), Image.Resampling.BILINEAR)
    return (numpy.asarray(line, numpy.float32).transpose(2, 0, 1)[numpy.newaxis] / 255 - 0.5) / 0.5


def test_the_openvino_recogniser_reads_padded_widths_as_the_real_ones(
    rapidocr_engine: RapidOcrEngine, typewriter: Image.Image
) -> None:
    """Lines are padded to a few widths so OpenVINO keeps few shapes; the output is cut back to
    the steps of the real width (so word boxes are placed on the real line) and reads the same."""
    model = OpenVinoModel(rapidocr_module.bundled_models() / rapidocr_module.RAPIDOCR_REC_MODEL, threads=1)
    padded = PaddedWidths(model)
    for width in [*range(320, 337), 641, 1283]:  # every remainder of the 8 px stride
        blank = numpy.zeros((1, 3, 48, width), numpy.float32)
        assert padded(blank).shape == model(blank).shape, width

    lines = [_line_batch(typewriter, quad) for quad in rapidocr_engine.find_text_lines(typewriter)[:12]]
    assert len({line.shape[-1] % WIDTH_STEP for line in lines}) > 1
    for line in lines:
        assert _decoded(padded(line)) == _decoded(model(line))


def _decoded(output: numpy.ndarray[Any, Any]) -> list[int]:
    """The characters a recogniser's output reads as, by index: CTC's best path, repeats and blanks (0) dropped."""
    best = output[0].argmax(axis=1).tolist()
    return [index for step, index in enumerate(best) if index and (step == 0 or best[step - 1] != index)]


def test_rapidocr_engine_reads_a_typewritten_page(
    rapidocr_engine: RapidOcrEngine, typewriter: Image.Image, typewriter_truth: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A one-column typewritten page comes back in order (under 2 % character errors), with word boxes inside
    their lines, and the engine prints nothing."""
    page = rapidocr_engine.recognize(typewriter, language="nl", dpi=300)

    assert character_error_rate(page.text, typewriter_truth) <= 0.02
    assert (page.width, page.height, page.rotation) == (typewriter.width, typewriter.height, 0)
    assert page.engine.startswith("rapidocr 3.10.0 PP-OCRv6 small on ")
    assert rapidocr_engine.runtime.name in page.engine  # which runtime read it, for an operator comparing nodes
    assert page.lines[0].text.startswith("Linzensoep")
    for line in page.lines:
        assert line.words
        assert "".join(word.text for word in line.words) == line.text.replace(" ", "")
        for word in line.words:
            assert line.box.x0 - 2 <= word.box.x0 <= word.box.x1 <= line.box.x1 + 2
    assert capfd.readouterr().out == ""


def test_read_page_turns_a_page_lying_on_its_side_upright(
    rapidocr_engine: RapidOcrEngine, typewriter: Image.Image, typewriter_truth: str
) -> None:
    """A page scanned turned 90° counter-clockwise is read after turning it 90° clockwise: the result says
    rotation 90 and its coordinates are those of the upright page."""
    lying = typewriter.rotate(90, expand=True)  # PIL turns counter-clockwise

    page = read_page(rapidocr_engine, lying, language=None, dpi=300)

    assert page.rotation == 90
    assert (page.width, page.height) == (typewriter.width, typewriter.height)
    assert character_error_rate(page.text, typewriter_truth) <= 0.02


@pytest.mark.parametrize(
    ("size", "paper", "grain"),
    [((1275, 1650), 255, 0.0), ((2550, 3300), 200, 0.0), ((1275, 1650), 250, 1.0), ((2550, 3300), 240, 3.0)],
)
def test_blank_pages_read_as_no_text_the_right_way_up(
    rapidocr_engine: RapidOcrEngine, size: tuple[int, int], paper: int, grain: float
) -> None:
    """A page without ink (white, grey paper, a faint scanner grain) has no lines and stays as it
    was scanned: the detector's occasional page-sized box is not taken for a line (the int8
    detector gave one on each of these and turned them sideways)."""
    rng = numpy.random.default_rng(7)
    page = Image.fromarray(numpy.clip(rng.normal(paper, grain, size[::-1]), 0, 255).astype(numpy.uint8), "L")

    assert rapidocr_engine.find_text_lines(page) == []
    read = read_page(rapidocr_engine, page, language=None, dpi=300)
    assert (read.blocks, read.rotation) == ([], 0)


def test_blank_page_reads_as_empty_and_silent(capfd: pytest.CaptureFixture[str]) -> None:
    """A fresh engine loads its models and reads a blank page as no text, writing nothing to stdout or stderr."""
    page = read_page(RapidOcrEngine(), Image.new("L", (1275, 1650), 255), language=None, dpi=150)

    assert page.blocks == []
    assert page.rotation == 0
    assert capfd.readouterr() == ("", "")
