"""The splitter in child processes held to memory and time limits.

PDFium and Pillow parse whatever was uploaded, in native code. Run in the ingest process, a
document that needs more memory than the machine has gets ingest OOM-killed, one that makes a
parser crash kills it, one that never ends holds it: every job waits. Here each call (count a
document's pages, open it, render its next page) runs in a child process whose address space
is capped (`RLIMIT_AS`) and that is given a time limit per call. Going over either, or the
child dying, fails that document with a `SplitterBreach` (a `DocumentError`, so the document
is reported failed with the cause); the child is replaced, and ingest goes on with other
documents.

One child serves one document at a time (`SplitProcesses.lease()`). The parent asks for the
next pages in batches: as many as fit in `BATCH_BYTES` (and `BATCH_PAGES`) and in a small
share of the time limit, so a document of tiny pages costs one pipe round trip per batch, not
per page (measured: the round trip was most of ingest's CPU for a 200 x 100 pixel page),
while a big page still travels alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bulkocr.runtime import die_with_parent, lower_priority
from bulkocr_ingest.split import (
    DocumentError,
    Page,
    PageImage,
    SplitLimits,
    count_pages,
    iter_pages,
)

# A spawned child imports PDFium and Pillow before it is ready: not the call's time.
_START_TIMEOUT_S = 60.0
BATCH_PAGES = 64
BATCH_BYTES = 4 << 20
# A batch stops growing after this long (or a quarter of the call's time limit, if less), so
# the time limit still measures one page, not a batch.
BATCH_SECONDS = 0.05


class SplitterBreach(DocumentError):
    """The splitter went over its memory or time limit on this document, or died reading it."""


@dataclass(frozen=True)
class ProcessLimits:
    memory_bytes: int
    call_timeout_s: float
    nice: int = 0


# --- the child ----------------------------------------------------------------------


def _serve(connection: Connection, limits: ProcessLimits, parent: int) -> None:
    """The child's loop: one request in, one answer out, until the pipe closes."""
    die_with_parent(parent)
    memory_bytes = limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Rendering runs ahead of OCR: where they share a node, OCR has the CPU first.
    lower_priority(limits.nice)
    pages: Any = None
    # An error met after some pages of a batch were made: those pages go first, it comes next.
    deferred: Exception | None = None
    connection.send(("ready", None))
    while True:
        try:
            operation, arguments = connection.recv()
        except EOFError:
            return
        try:
            if operation == "count":
                answer: object = count_pages(**arguments)
            elif operation == "open":
                pages, deferred = iter_pages(**arguments), None
                answer = None
            elif operation == "next":
                if deferred is not None:
                    error, deferred = deferred, None
                    raise error
                answer, deferred = _batch(pages, **arguments)
            else:
                raise ValueError(f"unknown splitter request {operation!r}")
        except MemoryError:
            # Answered, then this process ends: what the failed allocation left behind is
            # not worth keeping, and the parent starts a fresh child.
            pages = None
            limit = f"{memory_bytes // (1 << 20)} MB"
            connection.send(("error", SplitterBreach(f"needs more memory than the splitter may use ({limit})")))
            os._exit(0)
        except Exception as error:  # noqa: BLE001  # the parent decides what an error means
            _send_error(connection, error)
        else:
            connection.send(("ok", answer))


def _batch(
    pages: Iterator[Page], *, max_pages: int, max_bytes: int, max_seconds: float
) -> tuple[tuple[list[Page], bool], Exception | None]:
    """The next pages, as many as the limits allow (at least one unless the document ended)
    and whether the document ended with them; and the error that stopped the batch early, if
    any and if pages came before it."""
    batch: list[Page] = []
    size, started = 0, time.monotonic()
    while len(batch) < max_pages and size < max_bytes and time.monotonic() - started < max_seconds:
        try:
            page = next(pages, None)
        except MemoryError:
            raise
        except Exception as error:  # the parent decides what an error means
            if not batch:
                raise
            return (batch, False), error
        if page is None:
            return (batch, True), None
        batch.append(page)
        size += len(page.png) if isinstance(page, PageImage) else 0
    return (batch, False), None


def _send_error(connection: Connection, error: Exception) -> None:
    try:
        connection.send(("error", error))
    except Exception:  # noqa: BLE001  # an exception that cannot be pickled still gets its words across
        connection.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))


# --- the parent ---------------------------------------------------------------------


class SplitProcess:
    """One child process and the pipe to it; started on first use, replaced after a breach."""

    def __init__(self, limits: ProcessLimits) -> None:
        self._limits = limits
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None

    async def count_pages(self, path: Path, *, name: str, limits: SplitLimits) -> int:
        count = await self._call("count", {"path": path, "name": name, "limits": limits}, what="counting its pages")
        assert isinstance(count, int)
        return count

    async def open(self, path: Path, *, dpi: int, name: str, limits: SplitLimits, first: int) -> None:
        arguments = {"path": path, "dpi": dpi, "name": name, "limits": limits, "first": first}
        await self._call("open", arguments, what="opening it")

    async def next_pages(self, number: int) -> tuple[list[Page], bool]:
        """The next pages of the open document, from page `number` (for the cause), and
        whether the document ends with them."""
        limits = {
            "max_pages": BATCH_PAGES,
            "max_bytes": BATCH_BYTES,
            "max_seconds": min(BATCH_SECONDS, self._limits.call_timeout_s / 4),
        }
        answer = await self._call("next", limits, what=f"reading from page {number}")
        assert isinstance(answer, tuple)
        pages, ended = answer
        return pages, ended

    async def _call(self, operation: str, arguments: dict[str, Any], *, what: str) -> object:
        connection = await self._started()
        connection.send((operation, arguments))
        try:
            kind, answer = await asyncio.wait_for(asyncio.to_thread(connection.recv), self._limits.call_timeout_s)
        except TimeoutError:
            self.stop()
            raise SplitterBreach(
                f"the splitter took longer than {self._limits.call_timeout_s:g} s {what}, its time limit"
            ) from None
        except (EOFError, ConnectionResetError):  # the pipe is a socket pair: a killed child may reset it
            cause = self._death_cause()
            self.stop()
            raise SplitterBreach(f"the splitter died {what} ({cause})") from None
        except asyncio.CancelledError:
            self.stop()  # its answer would arrive as the answer to the next call
            raise
        if kind == "error":
            if isinstance(answer, SplitterBreach):
                self.stop()
            raise answer
        return answer

    async def start(self) -> None:
        """Start the child now (it imports PDFium and Pillow), not on the first document."""
        await self._started()

    async def _started(self) -> Connection:
        if self._process is not None and self._connection is not None and self._process.is_alive():
            return self._connection
        self.stop()
        # spawn, not fork: the parent runs an event loop and sockets a child must not inherit.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, self._limits, os.getpid()), name="bulkocr-splitter", daemon=True
        )
        await asyncio.to_thread(process.start)
        theirs.close()
        self._process, self._connection = process, ours
        try:
            await asyncio.wait_for(asyncio.to_thread(ours.recv), _START_TIMEOUT_S)
        except BaseException as error:
            self.stop()
            if isinstance(error, TimeoutError | EOFError | ConnectionResetError):
                raise RuntimeError("the splitter process did not start") from None  # retried through NSQ
            raise
        return ours

    def _death_cause(self) -> str:
        if self._process is None:
            return "gone"
        self._process.join(timeout=5)
        code = self._process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"killed by {name}" + (", most likely for memory" if name == "SIGKILL" else "")
        return f"exit code {code}"

    def stop(self) -> None:
        # The pipe is not closed here: a thread may still be reading it, and gets EOF once the
        # child is gone; the pipe closes when the last reference to it goes.
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
        self._process = self._connection = None

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None


class SplitProcesses:
    """A fixed set of split processes; a document leases one for as long as it splits."""

    def __init__(self, size: int, limits: ProcessLimits) -> None:
        self._processes = [SplitProcess(limits) for _ in range(size)]
        self._idle: asyncio.Queue[SplitProcess] = asyncio.Queue()
        for process in self._processes:
            self._idle.put_nowait(process)

    async def start(self) -> None:
        """Start every process, so the first documents after a start wait for none."""
        await asyncio.gather(*(process.start() for process in self._processes))

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[SplitProcess]:
        process = await self._idle.get()
        try:
            yield process
        finally:
            self._idle.put_nowait(process)

    def __enter__(self) -> SplitProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            process.stop()

    def pids(self) -> list[int]:
        return [pid for process in self._processes if (pid := process.pid()) is not None]
