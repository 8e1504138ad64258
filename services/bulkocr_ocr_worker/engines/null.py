"""The engine that reads nothing, for plumbing tests and benchmarks."""

from __future__ import annotations

import time

from PIL import Image

from bulkocr.page_model import PageText


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
