"""Where the bytes the uploader pushes come from: `fetch_output(job_id, doc_id, fmt)`.

The service takes any such function (tests inject their own). `StoredOutputs` is the real
one: plain text is read back from the stored page results, the same text the gateway
serves; the searchable PDF comes from `bulkocr.results` (cached by the output builder).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bulkocr.blobs import BlobStore
from bulkocr.documents import document_text
from bulkocr.errors import BlobNotFound
from bulkocr.formats import OutputUnavailable
from bulkocr.mongo import JobStore
from bulkocr.results import DocumentOutputs

FetchOutput = Callable[[str, str, str], Awaitable[bytes]]
"""(job_id, doc_id, fmt) -> the document's bytes in that format ("pdf" or "txt")."""


async def render_searchable_pdf(store: JobStore, blobs: BlobStore, job_id: str, doc_id: str) -> bytes:
    """The document as a searchable PDF (page images with an invisible text layer): the copy
    the output builder cached when the job completed, or rendered now if there is none."""
    try:
        return await DocumentOutputs(store, blobs).get(job_id, doc_id, "pdf")
    except (OutputUnavailable, BlobNotFound) as error:
        # A page image gone (retention) or nothing to render: this document cannot be pushed.
        raise OutputUnavailable(f"no searchable PDF for {doc_id}: {error}") from error


@dataclass(frozen=True)
class StoredOutputs:
    store: JobStore
    blobs: BlobStore

    async def __call__(self, job_id: str, doc_id: str, fmt: str) -> bytes:
        if fmt == "txt":
            return await self.text(job_id, doc_id)
        if fmt == "pdf":
            return await render_searchable_pdf(self.store, self.blobs, job_id, doc_id)
        raise OutputUnavailable(f"the uploader pushes pdf and txt, not {fmt}")

    async def text(self, job_id: str, doc_id: str) -> bytes:
        document = await self.store.get_document(job_id, doc_id)
        if document is None:
            raise OutputUnavailable(f"no document {doc_id} in job {job_id}")
        pages = await self.store.get_pages(job_id, doc_id)
        return (await document_text(document, pages, self.blobs)).encode()
