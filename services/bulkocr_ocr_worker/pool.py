"""OCR in a pool of processes, so the event loop keeps NSQ heartbeats and TOUCHes flowing.

Each pool process builds an engine once (on first use of its name) and reads pages with
`read_page`. The parent sends PNG bytes and gets the page model back as JSON. A process
that dies (killed, out of memory) breaks the pool; the pool is then rebuilt and the page
is retried through NSQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.synchronize import Barrier
from typing import Any

from PIL import Image, UnidentifiedImageError

from bulkocr.runtime import die_with_parent
from bulkocr_ocr_worker.engines import OcrEngine, make_engine, read_page
from bulkocr_ocr_worker.routing import Router

EngineSettings = dict[str, dict[str, Any]]


class PageUnreadable(Exception):
    """The page image cannot be decoded: retrying will not help."""


class OcrProcessDied(RuntimeError):
    """The process reading the page died; the page can be tried again."""


class OcrTimedOut(RuntimeError):
    """Reading the page outlasted the deadline; its process was killed and replaced, and the
    page can be tried again."""


START_TIMEOUT_S = 300.0
"""Longest a pool may take to start every process and ready its engine."""

# Per pool process, never in the service process: engines loaded on first use of each name.
_engines: dict[str, OcrEngine] = {}
_settings: EngineSettings = {}
_all_started: list[Barrier] = []


def _start_process(
    settings: EngineSettings, preload: str, max_page_pixels: int, parent: int, all_started: Barrier
) -> None:
    die_with_parent(parent)
    # Ingest already refused pages over this limit; Pillow's own (89.5 MP) must not refuse the rest.
    Image.MAX_IMAGE_PIXELS = max_page_pixels
    _settings.update(settings)
    _all_started.append(all_started)
    if preload:
        # Read once now: a runtime prepares itself on its first call (OpenVINO: 1-2 s), which
        # the first page would otherwise wait for.
        read_page(_engine(preload), Image.new("L", (640, 480), 255), language=None, dpi=300)


def _started() -> None:
    """Returns once every process of the pool has started: none can run two of these calls."""
    _all_started[0].wait(START_TIMEOUT_S)


def _engine(name: str) -> OcrEngine:
    if name not in _engines:
        _engines[name] = make_engine(name, **_settings.get(name, {}))
    return _engines[name]


@functools.cache
def _router() -> Router:
    return Router(_engine)


def _read(png: bytes, engine: str, language: str | None, dpi: int, document: str | None) -> tuple[str, float]:
    """The page read by the engine for its script (routing.py), which may not be the one asked for."""
    started = time.perf_counter()
    with _opened(png) as image:
        route = _router().route(engine, language, image, document=document)
        page = read_page(_engine(route.engine), image, language=route.language, dpi=dpi, rotation=route.rotation)
    return page.model_dump_json(), time.perf_counter() - started


def _read_with(engine: OcrEngine, png: bytes, language: str | None, dpi: int) -> tuple[str, float]:
    started = time.perf_counter()
    with _opened(png) as image:
        page = read_page(engine, image, language=language, dpi=dpi)
    return page.model_dump_json(), time.perf_counter() - started


@contextlib.contextmanager
def _opened(png: bytes) -> Iterator[Image.Image]:
    try:
        image = Image.open(io.BytesIO(png))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise PageUnreadable(f"page image cannot be read: {error}") from error
    with image:
        yield image


class OcrPool:
    """A process pool of a fixed size; `read()` awaits one page."""

    def __init__(
        self,
        processes: int,
        engine_settings: EngineSettings,
        preload: str,
        max_page_pixels: int = 80_000_000,
        page_timeout_s: float = 600.0,
    ) -> None:
        self._max_page_pixels = max_page_pixels
        self._page_timeout_s = page_timeout_s
        self.processes = processes
        self._engine_settings = engine_settings
        self._preload = preload
        self._executor = self._new_executor()
        # The null engine without a delay does no work worth a process hop (measured: the
        # hop was about 40 % of a worker's CPU per page), so it runs here.
        self._inline: dict[str, OcrEngine] = {}
        if not engine_settings.get("null", {}).get("seconds_per_page"):
            self._inline["null"] = make_engine("null", **engine_settings.get("null", {}))

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs an event loop and sockets a child must not inherit.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=context,
            initializer=_start_process,
            initargs=(
                self._engine_settings,
                self._preload,
                self._max_page_pixels,
                os.getpid(),
                context.Barrier(self.processes),
            ),
        )

    async def start(self) -> None:
        """Every process started, its engine built and used once; raises if one cannot start.
        Processes otherwise start with the first pages, which then wait seconds for them."""
        if self._preload in self._inline:
            return  # the worker's own engine runs in the service process
        loop = asyncio.get_running_loop()
        # One call per process: each spawns a process, and the barrier keeps a process that
        # started early from taking a second call.
        await asyncio.wait_for(
            asyncio.gather(*(loop.run_in_executor(self._executor, _started) for _ in range(self.processes))),
            START_TIMEOUT_S,
        )

    async def read(
        self, png: bytes, *, engine: str, language: str | None, dpi: int, document: str | None = None
    ) -> tuple[str, float]:
        """The page model as JSON and the seconds it took; `document` names the page's
        document (job/doc), whose script is then detected once, not on every page."""
        if (inline := self._inline.get(engine)) is not None:
            return _read_with(inline, png, language, dpi)
        executor = self._executor
        reading = asyncio.get_running_loop().run_in_executor(executor, _read, png, engine, language, dpi, document)
        try:
            return await asyncio.wait_for(reading, self._page_timeout_s)
        except BrokenProcessPool:
            self._replace(executor)
            raise OcrProcessDied("the OCR process died while reading the page") from None
        except TimeoutError:
            # A process cannot be told to stop one call: the pool is replaced, and pages the
            # other processes were reading come back as OcrProcessDied, to be retried.
            self._replace(executor)
            raise OcrTimedOut(
                f"reading the page took longer than {self._page_timeout_s:g} s: its OCR process was killed"
            ) from None

    def _replace(self, executor: ProcessPoolExecutor) -> None:
        if executor is not self._executor:
            return  # replaced already, by another page's failure
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def pids(self) -> list[int]:
        processes = getattr(self._executor, "_processes", None) or {}
        return [pid for pid in processes if pid != os.getpid()]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
