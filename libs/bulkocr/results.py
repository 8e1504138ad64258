"""A document's outputs in any format, rendered from its stored page results and cached.

The gateway (download routes), the output builder (heavy formats in the background when a
job completes) and the Archipelago uploader (searchable PDF) all get outputs through
`DocumentOutputs`, so a format is rendered one way and a cached copy is shared.

Page images are fetched to a temporary folder one at a time and handed to the renderer
lazily, so a long document never holds all its images in memory.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bulkocr.blobs import BlobStore
from bulkocr.documents import page_numbers, page_result
from bulkocr.errors import BlobNotFound
from bulkocr.formats import ALIASES, OutputUnavailable, format_name
from bulkocr.mongo import JobStore, page_key
from bulkocr.page_model import PageText
from bulkocr.renderers import FORMATS, OcrPage, OutputFormat

# Formats worth building ahead of a request and keeping (the others render in milliseconds).
CACHED = frozenset({"pdf"})

Stored = Mapping[str, Any]


def cached_formats(job: Stored) -> list[str]:
    """The formats a job asked for (as it named them) that the output builder makes ahead."""
    return [fmt for fmt in job["options"].get("formats", []) if ALIASES.get(fmt) in CACHED]


def output_format(name: str) -> OutputFormat:
    return FORMATS[format_name(name)]


def cache_key(job_id: str, doc_id: str, fmt: str) -> str:
    return f"jobs/{job_id}/outputs/{doc_id}{output_format(fmt).extension}"


@dataclass(frozen=True)
class DocumentOutputs:
    store: JobStore
    blobs: BlobStore

    async def get(self, job_id: str, doc_id: str, fmt: str, *, page: int | None = None) -> bytes:
        """The document (or one page of it) in `fmt`; a whole-document heavy format is cached."""
        output = output_format(fmt)
        cacheable = output.name in CACHED and page is None
        if cacheable:
            try:
                return await self.blobs.get(cache_key(job_id, doc_id, fmt))
            except BlobNotFound:
                pass
        document = await self._document(job_id, doc_id)
        data = await self._render(document, output, page=page)
        # Cached only once no more pages can change it.
        if cacheable and document.get("status") in ("completed", "partial", "failed"):
            await self.blobs.put(cache_key(job_id, doc_id, fmt), data)
        return data

    async def build(self, job_id: str, doc_id: str, fmt: str) -> int:
        """Render and cache a heavy format ahead of any request; returns its size."""
        data = await self._render(await self._document(job_id, doc_id), output_format(fmt))
        return await self.blobs.put(cache_key(job_id, doc_id, fmt), data)

    async def _document(self, job_id: str, doc_id: str) -> Stored:
        document = await self.store.get_document(job_id, doc_id)
        if document is None:
            raise OutputUnavailable(f"no document {doc_id} in job {job_id}")
        return document

    async def _render(self, document: Stored, output: OutputFormat, *, page: int | None = None) -> bytes:
        job_id, doc_id = document["job_id"], document["doc_id"]
        pages = await self.store.get_pages(job_id, doc_id)
        numbers = page_numbers(document, pages)
        if page is not None:
            if page not in numbers:
                raise OutputUnavailable(f"document {doc_id} has no page {page}")
            numbers = [page]
        with tempfile.TemporaryDirectory(prefix="bulkocr-output-") as work:
            staged = await self._stage(job_id, doc_id, pages, numbers, Path(work), output.needs_images)
            if not staged:
                raise OutputUnavailable(f"document {doc_id} has no page to render")
            try:
                return await asyncio.to_thread(_render, output, staged)
            except ValueError as error:  # the pages cannot make this format (outputs say why)
                raise OutputUnavailable(f"document {doc_id} as {output.name}: {error}") from error

    async def _stage(
        self, job_id: str, doc_id: str, pages: Sequence[Stored], numbers: list[int], work: Path, images: bool
    ) -> list[tuple[PageText, Path | None]]:
        """Each page's model, and (when the format needs it) its image saved to `work`."""
        by_number = {int(page["page"]): page for page in pages}
        tasks = {}
        if images:
            keys = [page_key(job_id, doc_id, number) for number in numbers]
            tasks = {int(task["page"]): task for task in await self.store.page_tasks_for(keys)}
        staged: list[tuple[PageText, Path | None]] = []
        for number in numbers:
            result = await page_result(by_number.get(number), self.blobs)
            image_path = None
            if images:
                task = tasks.get(number)
                if task is None:
                    continue  # never rendered by ingest: no image to show
                image_path = work / f"{number:05d}.png"
                image_path.write_bytes(await self.blobs.get(task["image"]))
            staged.append((result or _empty_page(image_path), image_path))
        return staged


def _empty_page(image_path: Path | None) -> PageText:
    """A page with no text (failed, or not read yet): the image alone, or a placeholder size."""
    if image_path is None:
        return PageText(width=1, height=1, engine="none")
    with Image.open(image_path) as image:
        return PageText(width=image.width, height=image.height, engine="none")


def _render(output: OutputFormat, staged: list[tuple[PageText, Path | None]]) -> bytes:
    buffer = io.BytesIO()
    output.write(_pages(staged), buffer)
    return buffer.getvalue()


def _pages(staged: list[tuple[PageText, Path | None]]) -> Iterator[OcrPage]:
    """One page at a time, its image turned upright as the OCR read it."""
    for text, image_path in staged:
        yield OcrPage(text, _upright_png(image_path, text.rotation) if image_path else None)


def _upright_png(path: Path, rotation: int) -> bytes:
    if rotation % 360 == 0:
        return path.read_bytes()
    with Image.open(path) as image:
        # PIL turns counter-clockwise for positive angles; `rotation` is clockwise.
        turned = image.rotate(-rotation, expand=True)
        buffer = io.BytesIO()
        turned.save(buffer, format="PNG")
        return buffer.getvalue()
