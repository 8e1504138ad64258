"""Downloads of a document in every format, per page, as a bundle; and the background builder."""

from __future__ import annotations

import io
import json
import zipfile

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information
from lxml import etree
from PIL import Image

from bulkocr.contracts import DocumentPlanned, JobCompleted, JobOptions, PageTask
from bulkocr.mongo import OutputStore
from bulkocr.nsq import Delivery
from bulkocr.page_model import Block, Box, Line, PageText, Word
from bulkocr.results import DocumentOutputs, cache_key
from bulkocr_aggregator.coordinator import Coordinator
from bulkocr_client import results as results_cli
from bulkocr_outputs.service import handle_completed
from tests.integration.test_gateway import ALICE, BOB, submit
from tests.integration.test_store import page_done
from tests.stores import SeedStore

WIDTH, HEIGHT = 1200, 800


def page_text(page: int) -> PageText:
    words = [
        Word(text=f"alpha{page}", box=Box(x0=100, y0=100, x1=300, y1=150), confidence=0.9),
        Word(text="beta", box=Box(x0=340, y0=100, x1=480, y1=150), confidence=0.8),
    ]
    line = Line(text=f"alpha{page} beta", box=Box(x0=100, y0=100, x1=480, y1=150), confidence=0.85, words=words)
    return PageText(width=WIDTH, height=HEIGHT, dpi=150, engine="test", blocks=[Block(box=line.box, lines=[line])])


async def finished_job(api, store: SeedStore, blobs, jobs: Coordinator, formats: str = "txt,json,pdf") -> str:
    """A job of one two-page document, OCR'd (results written by the aggregator)."""
    job_id = await submit(api, ("scan.pdf", b"%PDF-1.4 stand-in"), formats=formats)
    await jobs.planned(DocumentPlanned(job_id=job_id, doc_id="d0001", pages=2))
    for number in (1, 2):
        image = io.BytesIO()
        Image.new("L", (WIDTH, HEIGHT), 255).save(image, format="PNG")
        key = f"jobs/{job_id}/pages/d0001/{number:05d}.png"
        await blobs.put(key, image.getvalue())
        task = PageTask(job_id=job_id, doc_id="d0001", page=number, image=key, dpi=150, engine="test")
        await store.add_page_tasks([task.model_dump(mode="json")])
        done = page_done(number, job_id=job_id, doc_id="d0001").model_copy(update={"result": page_text(number)})
        await jobs.outcome(done)
    await jobs.flush()
    return job_id


async def test_searchable_pdf_carries_the_words_of_every_page(api, store, blobs, jobs):
    """The PDF download has one page per document page, each with its words in the text layer."""
    job_id = await finished_job(api, store, blobs, jobs)
    response = await api.get(f"/api/bulk/jobs/{job_id}/documents/d0001/pdf", headers=ALICE)
    assert response.status == 200
    assert response.content_type == "application/pdf"
    with pdfium.PdfDocument(await response.read()) as pdf:
        texts = [pdf[index].get_textpage().get_text_range() for index in range(len(pdf))]
    assert [" ".join(t.split()) for t in texts] == ["alpha1 beta", "alpha2 beta"]


async def test_each_format_and_single_pages_are_served(api, store, blobs, jobs):
    """hOCR, ALTO, MiniOCR and text parse and name the words; ?page=2 holds page 2 alone."""
    job_id = await finished_job(api, store, blobs, jobs)
    base = f"/api/bulk/jobs/{job_id}/documents/d0001"
    for fmt in ("hocr", "alto", "miniocr"):
        response = await api.get(f"{base}/{fmt}", headers=ALICE)
        assert response.status == 200, fmt
        tree = etree.fromstring(await response.read())
        words = " ".join([*tree.itertext(), *tree.xpath("//@CONTENT")])
        assert "alpha1" in words
        assert "alpha2" in words
    response = await api.get(f"{base}/txt?page=2", headers=ALICE)
    assert await response.text() == "alpha2 beta"
    assert (await api.get(f"{base}/txt?page=3", headers=ALICE)).status == 400
    assert (await api.get(f"{base}/docx", headers=ALICE)).status == 404
    assert (await api.get(f"{base}/pdf", headers=BOB)).status == 404


async def test_bundle_holds_every_document_in_every_format_with_a_manifest(api, store, blobs, jobs):
    """bundle.zip streams each document in the requested formats and a manifest naming the files."""
    job_id = await finished_job(api, store, blobs, jobs)
    response = await api.get(f"/api/bulk/jobs/{job_id}/bundle.zip?formats=txt,alto,pdf", headers=ALICE)
    assert response.status == 200
    with zipfile.ZipFile(io.BytesIO(await response.read())) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        files = manifest["documents"][0]["files"]
        assert set(files) == {"txt", "alto", "pdf"}
        assert bundle.read(files["txt"]).decode() == "alpha1 beta\falpha2 beta"
        assert bundle.read(files["pdf"]).startswith(b"%PDF")


async def test_a_bundle_holds_each_format_once_however_often_it_is_named(api, store, blobs, jobs):
    """`formats=pdf,pdf,…,txt,text` gives one PDF and one text per document, not forty."""
    job_id = await finished_job(api, store, blobs, jobs)
    named = ",".join(["pdf"] * 40 + ["txt", "text"])
    response = await api.get(f"/api/bulk/jobs/{job_id}/bundle.zip?formats={named}", headers=ALICE)
    assert response.status == 200
    with zipfile.ZipFile(io.BytesIO(await response.read())) as bundle:
        names = bundle.namelist()
        assert len(names) == len(set(names))
        files = json.loads(bundle.read("manifest.json"))["documents"][0]["files"]
    assert set(files) == {"pdf", "txt"}
    assert sorted(names) == sorted([*files.values(), "manifest.json"])


async def test_builder_caches_the_pdf_once_and_downloads_use_it(api, store, blobs, jobs):
    """On job completion the builder renders the requested PDF into the blob store (once, even if
    the event is redelivered) and records it ready; the download then serves that copy."""
    job_id = await finished_job(api, store, blobs, jobs)
    outputs = OutputStore(store.db)
    builder = DocumentOutputs(store, blobs)
    completed = JobCompleted(job_id=job_id, status="completed")
    await handle_completed(completed, Delivery(None), store=store, outputs=outputs, builder=builder)
    cached = await blobs.get(cache_key(job_id, "d0001", "pdf"))
    await handle_completed(completed, Delivery(None), store=store, outputs=outputs, builder=builder)
    assert await blobs.get(cache_key(job_id, "d0001", "pdf")) == cached
    assert await outputs.status(job_id, "d0001", "pdf") == "ready"
    response = await api.get(f"/api/bulk/jobs/{job_id}/documents/d0001/pdf", headers=ALICE)
    assert await response.read() == cached
    status = await (await api.get(f"/api/bulk/status/{job_id}", headers=ALICE)).json()
    assert status["documents"][0]["outputs"] == {"pdf": "ready"}


async def test_builder_makes_only_what_the_job_asked_for(api, store, blobs, jobs):
    """A job that did not ask for PDF gets none built in the background."""
    job_id = await finished_job(api, store, blobs, jobs, formats="txt")
    assert JobOptions.model_validate((await store.get_job(job_id) or {})["options"]).formats == ("txt",)
    await handle_completed(
        JobCompleted(job_id=job_id, status="completed"),
        Delivery(None),
        store=store,
        outputs=OutputStore(store.db),
        builder=DocumentOutputs(store, blobs),
    )
    assert not await blobs.exists(cache_key(job_id, "d0001", "pdf"))


async def test_results_command_downloads_every_format(api, store, blobs, jobs, tmp_path):
    """`bulkocr results JOB --format pdf,alto,txt` writes each document in each format under --out."""
    job_id = await finished_job(api, store, blobs, jobs)
    request = results_cli.ResultsRequest(
        job_id=job_id, url=str(api.make_url("")), token="alice-token", formats=["pdf", "alto", "txt"], out=tmp_path
    )
    out, err = io.StringIO(), io.StringIO()
    assert await results_cli.results_command(request, out=out, err=err) == 0, err.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.pdf.alto.xml", "scan.pdf.pdf", "scan.pdf.txt"]
    assert (tmp_path / "scan.pdf.txt").read_text() == "alpha1 beta\falpha2 beta"
    assert (tmp_path / "scan.pdf.pdf").read_bytes().startswith(b"%PDF")
    bad = results_cli.ResultsRequest(
        job_id=job_id, url=str(api.make_url("")), token="t", formats=["docx"], out=tmp_path
    )
    assert await results_cli.results_command(bad, out=out, err=err) == 2
    assert "unknown format" in err.getvalue()
