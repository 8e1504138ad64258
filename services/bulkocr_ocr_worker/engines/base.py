"""What every engine is, and the whole recognition of one page.

The service calls `read_page(engine, image, language=..., dpi=...)`: it turns the page upright
(see orientation.py), recognises it, and returns lines grouped into blocks in reading order.
"""

from __future__ import annotations

from typing import Protocol

from PIL import Image

from bulkocr.page_model import PageText
from bulkocr_ocr_worker.orientation import greyscale_or_rgb, turn_clockwise


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


def read_page(
    engine: OcrEngine, image: Image.Image, *, language: str | None, dpi: int, rotation: int | None = None
) -> PageText:
    """Orientation, recognition and reading order for one page image.

    Coordinates in the result refer to the page turned upright; `rotation` says by how much
    the given image was turned clockwise to get there (found by the engine unless given).
    """
    image = greyscale_or_rgb(image)
    if rotation is None:
        rotation = engine.rotation(image)
    page = engine.recognize(turn_clockwise(image, rotation), language=language, dpi=dpi)
    return page.model_copy(update={"rotation": rotation})
