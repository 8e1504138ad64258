"""Download routes: a document in any output format, one page of it, or a whole job as a zip.

`GET /api/bulk/jobs/{job_id}/documents/{doc_id}/{fmt}` with fmt one of pdf, hocr, alto,
miniocr, txt, json (`?page=N` for one page); `GET /api/bulk/jobs/{job_id}/bundle.zip`
(`?formats=pdf,alto`, default the job's formats) with every document in every format and a
manifest. Heavy formats come from the blob-store cache when the output builder made them.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from typing_extensions import Buffer

from bulkocr.formats import ALIASES, OutputUnavailable
from bulkocr.results import DocumentOutputs, output_format
from bulkocr_gateway.http import error_response
from bulkocr_gateway.keys import BLOBS, OWNER, STORE

download_routes = web.RouteTableDef()


def _outputs(request: web.Request) -> DocumentOutputs:
    return DocumentOutputs(request.app[STORE], request.app[BLOBS])


async def _owned_job(request: web.Request) -> Mapping[str, Any] | None:
    return await request.app[STORE].get_job(request.match_info["job_id"], owner=request[OWNER])


def _page_param(request: web.Request) -> int | None:
    raw = request.query.get("page")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise OutputUnavailable(f"page must be a number from 1, not {raw!r}")
    return int(raw)


@download_routes.get(r"/api/bulk/jobs/{job_id}/documents/{doc_id}/{fmt:(pdf|hocr|alto|miniocr|txt)}")
async def document_output(request: web.Request) -> web.Response:
    job = await _owned_job(request)
    if job is None:
        return error_response(404, f"no job {request.match_info['job_id']}")
    doc_id, fmt = request.match_info["doc_id"], request.match_info["fmt"]
    if await request.app[STORE].uploaded_document(job["_id"], doc_id) is None:
        return error_response(404, f"no document {doc_id} in job {job['_id']}")
    try:
        data = await _outputs(request).get(job["_id"], doc_id, fmt, page=_page_param(request))
    except OutputUnavailable as error:
        return error_response(400 if "page" in str(error) else 404, str(error))
    output = output_format(fmt)
    suffix = f"-p{request.query['page']}" if "page" in request.query else ""
    filename = f"{doc_id}{suffix}{output.extension}"
    return web.Response(
        body=data,
        content_type=output.media_type.split(";")[0],
        charset="utf-8" if "charset" in output.media_type else None,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@download_routes.get("/api/bulk/jobs/{job_id}/bundle.zip")
async def bundle(request: web.Request) -> web.StreamResponse:
    """Every document in every requested format, plus manifest.json, streamed as a zip."""
    job = await _owned_job(request)
    if job is None:
        return error_response(404, f"no job {request.match_info['job_id']}")
    formats = _bundle_formats(request, job)
    if isinstance(formats, web.Response):
        return formats
    documents = [d for d in await request.app[STORE].get_documents(job["_id"]) if not d.get("members")]
    response = web.StreamResponse(
        headers={"Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{job["_id"]}.zip"'}
    )
    await response.prepare(request)
    writer = _ZipStream(response)
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for document in documents:
            entry = await _bundle_document(request, archive, job["_id"], document, formats)
            await writer.drain()
            manifest.append(entry)
        archive.writestr("manifest.json", json.dumps({"job_id": job["_id"], "documents": manifest}, indent=2))
    await writer.drain()
    await response.write_eof()
    return response


def _bundle_formats(request: web.Request, job: Mapping[str, Any]) -> list[str] | web.Response:
    raw = request.query.get("formats")
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else list(job["options"].get("formats") or ["txt"])
    unknown = [name for name in names if name not in ALIASES]
    if unknown:
        return error_response(400, f"unknown formats {unknown}; known: {', '.join(sorted(ALIASES))}")
    # Each format once, however often it is named (txt and text are one): a repeated list
    # would multiply the bundle's size.
    kept: dict[str, str] = {}
    for name in names:
        kept.setdefault(ALIASES[name], name)
    return list(kept.values())


async def _bundle_document(
    request: web.Request, archive: zipfile.ZipFile, job_id: str, document: Mapping[str, Any], formats: list[str]
) -> dict[str, Any]:
    doc_id = document["doc_id"]
    entry: dict[str, Any] = {
        "doc_id": doc_id,
        "filename": document.get("filename"),
        "status": document.get("status"),
        "pages": document.get("pages"),
        "error": document.get("error"),
        "files": {},
    }
    for fmt in formats:
        try:
            data = await _outputs(request).get(job_id, doc_id, fmt)
        except OutputUnavailable as error:
            entry.setdefault("missing", {})[fmt] = str(error)
            continue
        name = f"{doc_id}/{doc_id}{output_format(fmt).extension}"
        # Compressing is CPU work: off the event loop, so health checks and other requests flow.
        await asyncio.to_thread(archive.writestr, name, data)
        entry["files"][fmt] = name
    return entry


class _ZipStream(io.RawIOBase):
    """A write-only file for zipfile that hands what it got to the HTTP response between entries,
    so a bundle is never held in memory whole (zipfile writes data descriptors when it cannot seek)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__()
        self._response = response
        self._pending = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        chunk = bytes(data)
        self._pending += chunk
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    async def drain(self) -> None:
        if self._pending:
            await self._response.write(bytes(self._pending))
            self._pending.clear()
