"""The splitter's child processes: a document that goes over the memory or time limit, or
whose split process dies, fails with the cause, and the next document is split as usual."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bulkocr_ingest.split import DEFAULT_LIMITS, CorruptDocument, Page, PageFailure, PageImage
from bulkocr_ingest.split.png import png_bytes
from bulkocr_ingest.split_process import (
    BATCH_BYTES,
    BATCH_PAGES,
    ProcessLimits,
    SplitProcess,
    SplitProcesses,
    SplitterBreach,
    _batch,
)
from tests.images import blank_png
from tests.ocr_quality import TEST_DATA
from tests.waiting import eventually

MIB = 1 << 20


@pytest.fixture(scope="module")
def big_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 8900 x 8900 RGB page (79 MP, under the 80 MP pixel limit): 317 MB to decode."""
    path = tmp_path_factory.mktemp("pages") / "big.png"
    path.write_bytes(blank_png(8900, 8900))
    return path


@pytest.fixture
def processes() -> Iterator[list[SplitProcess]]:
    started: list[SplitProcess] = []
    yield started
    for process in started:
        process.stop()


def split_process(processes: list[SplitProcess], *, memory_mb: int = 2048, timeout_s: float = 60.0) -> SplitProcess:
    process = SplitProcess(ProcessLimits(memory_bytes=memory_mb * MIB, call_timeout_s=timeout_s))
    processes.append(process)
    return process


async def all_pages(process: SplitProcess, path: Path, *, dpi: int = 150) -> list[PageImage]:
    await process.open(path, dpi=dpi, name=path.name, limits=DEFAULT_LIMITS, first=1)
    pages: list[PageImage] = []
    ended = False
    while not ended:
        batch, ended = await process.next_pages(len(pages) + 1)
        for page in batch:
            assert isinstance(page, PageImage), page
            pages.append(page)
    return pages


async def test_pages_come_from_the_child_as_they_would_in_process(processes):
    """A 4-page PDF is counted and split in the child: four PNG pages, numbered in order."""
    process = split_process(processes)
    path = TEST_DATA / "cardinal.pdf"
    assert await process.count_pages(path, name=path.name, limits=DEFAULT_LIMITS) == 4
    pages = await all_pages(process, path)
    assert [page.number for page in pages] == [1, 2, 3, 4]
    assert all(page.png.startswith(b"\x89PNG") for page in pages)


async def test_small_pages_come_in_batches_and_big_ones_alone(processes, tmp_path):
    """300 tiny pages cross the pipe a batch at a time (not one round trip each), in order;
    a page that fills the byte budget by itself comes alone."""
    process = split_process(processes)
    tiny = tmp_path / "tiny.tif"
    frame = Image.new("1", (200, 100), 1)
    frame.save(tiny, format="TIFF", save_all=True, append_images=[frame] * 299, compression="raw")
    await process.open(tiny, dpi=150, name=tiny.name, limits=DEFAULT_LIMITS, first=1)
    batches: list[list[Page]] = []
    ended = False
    while not ended:
        batch, ended = await process.next_pages(sum(map(len, batches)) + 1)
        batches.append(batch)
    assert [page.number for batch in batches for page in batch] == list(range(1, 301))
    assert len(batches) < 300 / 4
    assert max(map(len, batches)) <= BATCH_PAGES

    noisy = tmp_path / "noisy.tif"
    pages = [Image.frombytes("L", (2100, 2100), os.urandom(2100 * 2100)) for _ in range(3)]
    pages[0].save(noisy, format="TIFF", save_all=True, append_images=pages[1:], compression="raw")
    assert all(len(png_bytes(page, 150)) >= BATCH_BYTES for page in pages)  # noise does not compress
    await process.open(noisy, dpi=150, name=noisy.name, limits=DEFAULT_LIMITS, first=1)
    answers = [await process.next_pages(number) for number in (1, 2, 3, 4)]
    assert [([page.number for page in pages], ended) for pages, ended in answers] == [
        ([1], False),
        ([2], False),
        ([3], False),
        ([], True),
    ]


async def test_a_page_over_the_memory_limit_fails_with_the_cause_and_the_next_document_is_read(processes, big_page):
    """Decoding the 79 MP page needs more than a 200 MB address space: the call fails with a
    SplitterBreach that names the limit, the child is replaced, and the next document is read."""
    process = split_process(processes, memory_mb=200)
    assert await process.count_pages(big_page, name=big_page.name, limits=DEFAULT_LIMITS) == 1
    first_pid = process.pid()
    with pytest.raises(SplitterBreach, match=r"needs more memory than the splitter may use \(200 MB\)"):
        await all_pages(process, big_page)
    pages = await all_pages(process, TEST_DATA / "typewriter.png")
    assert len(pages) == 1
    assert process.pid() not in (None, first_pid)


async def test_a_page_over_the_time_limit_fails_with_the_cause(processes, big_page, tmp_path):
    """Producing the 79 MP page takes far longer than 0.1 s (inflating its 317 MB alone does; a
    1 s limit was not always reached on a fast Xeon): with a 0.1 s limit the child is killed,
    the call fails with the limit and the page named, and a fresh child reads the next document."""
    process = split_process(processes, timeout_s=0.1)
    await process.open(big_page, dpi=150, name=big_page.name, limits=DEFAULT_LIMITS, first=1)
    first_pid = process.pid()
    with pytest.raises(SplitterBreach, match=r"took longer than 0.1 s reading from page 1, its time limit"):
        await process.next_pages(1)
    small = tmp_path / "small.png"
    small.write_bytes(blank_png(100, 100))  # milliseconds to split, however busy the machine
    assert len(await all_pages(process, small)) == 1
    assert process.pid() not in (None, first_pid)


async def test_a_split_process_killed_mid_page_fails_the_document_not_the_service(processes, big_page):
    """A child killed while rendering (as the kernel's OOM killer would) fails that call with
    the signal named; the next call starts a fresh child."""
    process = split_process(processes)
    await process.open(big_page, dpi=150, name=big_page.name, limits=DEFAULT_LIMITS, first=1)
    pid = process.pid()
    assert pid is not None
    rendering = asyncio.create_task(process.next_pages(1))
    await asyncio.sleep(0)  # the request is sent; decoding the page takes far longer than this
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(SplitterBreach, match=r"the splitter died reading from page 1 \(killed by SIGKILL"):
        await rendering
    assert len(await all_pages(process, TEST_DATA / "typewriter.png")) == 1


async def test_split_processes_render_at_their_niceness_so_ocr_on_the_node_comes_first():
    """Ingest's rendering runs ahead of OCR; where both share a node's cores, the split
    processes yield to the OCR processes (BULKOCR_INGEST_SPLIT_NICE)."""
    with SplitProcesses(1, ProcessLimits(memory_bytes=2048 * MIB, call_timeout_s=60, nice=7)) as pool:
        path = TEST_DATA / "typewriter.png"
        async with pool.lease() as process:
            assert await process.count_pages(path, name=path.name, limits=DEFAULT_LIMITS) == 1
        (pid,) = pool.pids()
        niceness = os.getpriority(os.PRIO_PROCESS, 0) + 7
        assert os.getpriority(os.PRIO_PROCESS, pid) == niceness
        if Path("/proc/self/autogroup").exists():
            # Under autogroup scheduling niceness ranks only a session's own processes: the
            # child leads its own session, which yields to the OCR workers' sessions.
            assert os.getsid(pid) == pid
            assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == str(niceness)


async def test_documents_wait_for_a_free_split_process_and_processes_end_with_the_pool():
    """Two processes serve three documents: the third waits for a lease; leaving the pool
    ends every child."""
    with SplitProcesses(2, ProcessLimits(memory_bytes=2048 * MIB, call_timeout_s=60)) as pool:
        path = TEST_DATA / "typewriter.png"

        async def count() -> int:
            async with pool.lease() as process:
                return await process.count_pages(path, name=path.name, limits=DEFAULT_LIMITS)

        assert list(await asyncio.gather(count(), count(), count())) == [1, 1, 1]
        pids = pool.pids()
        assert len(pids) == 2
    await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="the children to end")


def test_a_batch_cut_short_by_an_error_hands_over_its_pages_first():
    """An error after some pages of a batch does not lose them: they come, with the error for
    the child to raise at the next call; with no page before it, the error comes at once."""

    def pages_then_error() -> Iterator[Page]:
        yield PageFailure(1, CorruptDocument("page 1 is torn"))
        yield PageFailure(2, CorruptDocument("page 2 is torn"))
        raise CorruptDocument("the file ends here")

    pages = pages_then_error()
    (batch, ended), error = _batch(pages, max_pages=10, max_bytes=BATCH_BYTES, max_seconds=60)
    assert ([page.number for page in batch], ended) == ([1, 2], False)
    assert isinstance(error, CorruptDocument)
    failing_at_once = pages_then_error()
    next(failing_at_once), next(failing_at_once)
    with pytest.raises(CorruptDocument, match="the file ends here"):
        _batch(failing_at_once, max_pages=10, max_bytes=BATCH_BYTES, max_seconds=60)
