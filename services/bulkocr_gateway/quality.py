"""The quality view of a job: its pages ranked worst first by their quality signals (blank
pages, then the lowest mean word confidence), so a curator checks those before signing off
a batch. Each row links the page's text and JSON (its words, boxes and confidences)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from bulkocr.page_model import LOW_WORD_CONFIDENCE, PageQuality
from bulkocr_gateway.http import json_response
from bulkocr_gateway.keys import STORE
from bulkocr_gateway.routes import owned_job, paging

quality_routes = web.RouteTableDef()


class RankedPage(BaseModel):
    doc_id: str
    page: int
    quality: PageQuality | None
    json_url: str
    text_url: str


class QualityView(BaseModel):
    job_id: str
    pages: list[RankedPage]
    pages_failed: int
    doubtful_below: float
    page: int
    per_page: int
    total: int
    next_url: str | None


def _quality_url(job_id: str, page: int, per_page: int) -> str:
    return f"/api/bulk/jobs/{job_id}/quality?page={page}&per_page={per_page}"


@quality_routes.get("/api/bulk/jobs/{job_id}/quality")
async def job_quality(request: web.Request) -> web.Response:
    job = await owned_job(request)
    job_id = str(job["_id"])
    page, per_page = paging(request, per_page=50)
    store = request.app[STORE]
    ranked = await store.pages_worst_first(job_id, skip=(page - 1) * per_page, limit=per_page)
    total = await store.count_pages(job_id, "done")
    base = f"/api/bulk/jobs/{job_id}/documents"
    rows = [
        RankedPage(
            doc_id=row["doc_id"],
            page=row["page"],
            quality=PageQuality.model_validate(row["quality"]) if row.get("quality") else None,
            json_url=f"{base}/{row['doc_id']}/json?page={row['page']}",
            text_url=f"{base}/{row['doc_id']}/txt?page={row['page']}",
        )
        for row in ranked
    ]
    view = QualityView(
        job_id=job_id,
        pages=rows,
        pages_failed=await store.count_pages(job_id, "failed"),
        doubtful_below=LOW_WORD_CONFIDENCE,
        page=page,
        per_page=per_page,
        total=total,
        next_url=_quality_url(job_id, page + 1, per_page) if page * per_page < total else None,
    )
    return json_response(view)
