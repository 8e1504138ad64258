"""What the web app's page viewer reads: a page's image as ingest stored it (owner only, 404
for anything unknown or gone), and a page's JSON saying how many pages its document has."""

from __future__ import annotations

import io

from PIL import Image

from bulkocr.contracts import PageTask
from tests.integration.test_gateway import ALICE, BOB, page_done, page_text, submit
from tests.progress import set_document


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


async def rendered_page(store, blobs, job_id: str, doc_id: str, page: int, image: bytes) -> str:
    """Store a page image and its task as ingest does; the image's key."""
    key = f"jobs/{job_id}/pages/{doc_id}/{page:05d}.png"
    await blobs.put(key, image)
    task = PageTask(job_id=job_id, doc_id=doc_id, page=page, image=key, dpi=150, engine="null")
    await store.add_page_tasks([task.model_dump(mode="json")])
    return key


def image_url(job_id: str, doc_id: str = "d0001", page: int | str = 1) -> str:
    return f"/api/bulk/jobs/{job_id}/documents/{doc_id}/pages/{page}/image"


async def test_the_owner_gets_the_page_image_as_ingest_stored_it(api, store, blobs):
    """200 with the stored PNG's bytes (the second page's, not the first's), image/png, kept
    privately by the browser and apart for each token."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await rendered_page(store, blobs, job_id, "d0001", 1, png(30, 40))
    second = png(60, 20)
    await rendered_page(store, blobs, job_id, "d0001", 2, second)

    response = await api.get(image_url(job_id, page=2), headers=ALICE)
    assert response.status == 200
    assert response.content_type == "image/png"
    assert await response.read() == second
    assert response.headers["Cache-Control"].startswith("private")
    assert response.headers["Vary"] == "Authorization"
    assert "img-src blob:" in response.headers["Content-Security-Policy"]


async def test_another_owner_or_no_token_gets_no_image(api, store, blobs):
    """Bob gets 404 for Alice's page (as for her job), a request without a token 401."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await rendered_page(store, blobs, job_id, "d0001", 1, png(30, 40))
    mine = await api.get(image_url(job_id), headers=ALICE)
    assert mine.status == 200
    theirs = await api.get(image_url(job_id), headers=BOB)
    assert theirs.status == 404
    assert await theirs.json() == {"error": f"no job {job_id}"}
    assert (await api.get(image_url(job_id))).status == 401


async def test_unknown_jobs_documents_pages_and_gone_images_get_404(api, store, blobs):
    """An unknown job, an unknown document, a page never rendered (or page 0), a page number
    too long to be one, and an image that retention removed: each a 404 saying what is missing."""
    job_id = await submit(api, ("book.pdf", b"%PDF"), ("other.png", b"png"))
    key = await rendered_page(store, blobs, job_id, "d0001", 1, png(30, 40))
    expected = {
        image_url("0123456789abcdef0123456789abcdef"): "no job",
        image_url(job_id, doc_id="d0009"): "no document d0009",
        image_url(job_id, page=2): "no rendered page 2",
        image_url(job_id, page=0): "no rendered page 0",
        image_url(job_id, doc_id="d0002"): "no rendered page 1",
        image_url(job_id, page="1" * 10): "not found",
    }
    for url, reason in expected.items():
        response = await api.get(url, headers=ALICE)
        assert response.status == 404, url
        assert reason in (await response.json())["error"], url

    await blobs.delete_prefix(key)
    gone = await api.get(image_url(job_id), headers=ALICE)
    assert gone.status == 404
    assert "no longer kept" in (await gone.json())["error"]


async def test_one_page_of_json_says_how_many_pages_the_document_has(api, store):
    """`?page=N` holds that page alone, with the document's page count for the viewer's
    next and previous; the whole document says the same."""
    job_id = await submit(api, ("book.pdf", b"%PDF"))
    await set_document(store, job_id, "d0001", pages=3, status="processing")
    await store.record_outcome(page_done(job_id, "d0001", 2, result=page_text("two")))
    url = f"/api/bulk/jobs/{job_id}/documents/d0001/json"

    one = await (await api.get(f"{url}?page=2", headers=ALICE)).json()
    assert one["page_count"] == 3
    assert [(page["page"], page["status"], page["rotation"]) for page in one["pages"]] == [(2, "done", 0)]
    whole = await (await api.get(url, headers=ALICE)).json()
    assert (whole["page_count"], len(whole["pages"])) == (3, 3)
