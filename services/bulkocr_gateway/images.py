"""A page's image for the web app's page viewer: the PNG that ingest rendered and the OCR
read, in its source orientation (the page's `rotation` says how far OCR turned it upright,
and word boxes are in the upright page, so the viewer turns the image the same way).

The image's blob key comes from the page's task in the page manifest, as ingest recorded
it, so the gateway never rebuilds another service's key layout.
"""

from __future__ import annotations

from aiohttp import web

from bulkocr.errors import BlobNotFound
from bulkocr.mongo import page_key
from bulkocr_gateway.http import fail
from bulkocr_gateway.keys import BLOBS, STORE
from bulkocr_gateway.routes import owned_job

image_routes = web.RouteTableDef()

IMAGE_CACHE_CONTROL = "private, max-age=3600"
"""A page image never changes once rendered, so the browser may keep it; `private` keeps it
out of shared caches, and `Vary: Authorization` keeps one token's copy from another's."""


# At most 9 digits, as for every page number the gateway takes; longer paths match no route.
@image_routes.get("/api/bulk/jobs/{job_id}/documents/{doc_id}/pages/{page:[0-9]{1,9}}/image")
async def page_image(request: web.Request) -> web.Response:
    job = await owned_job(request)
    job_id, doc_id = str(job["_id"]), request.match_info["doc_id"]
    number = int(request.match_info["page"])
    store = request.app[STORE]
    tasks = await store.page_tasks_for([page_key(job_id, doc_id, number)])
    if not tasks:
        if await store.uploaded_document(job_id, doc_id) is None:
            fail(web.HTTPNotFound, f"no document {doc_id} in job {job_id}")
        fail(web.HTTPNotFound, f"document {doc_id} has no rendered page {number}")
    try:
        png = await request.app[BLOBS].get(tasks[0]["image"])
    except BlobNotFound:
        fail(web.HTTPNotFound, f"the image of page {number} of document {doc_id} is no longer kept")
    headers = {"Cache-Control": IMAGE_CACHE_CONTROL, "Vary": "Authorization"}
    return web.Response(body=png, content_type="image/png", headers=headers)
