"""The whole product on one machine: real servers, every service its own process, the real
PP-OCRv6 engine, HTTP in and text out."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bulkocr_devstack.stack import LocalStack
from tests.e2e import client
from tests.ocr_quality import TEST_DATA, character_error_rate
from tests.script_pages import ARABIC, GREEK, RUSSIAN, Script, render, truth

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
MAX_CER = 0.03


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    environment = {"BULKOCR_API_TOKENS": f"archivist:{TOKEN}", "BULKOCR_NSQ_BACKOFF_BASE_S": "1"}
    with LocalStack(tmp_path_factory.mktemp("stack"), workers=2, environment={**os.environ, **environment}) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        yield session


async def submit(http: aiohttp.ClientSession, stack: LocalStack, names: list[str]) -> str:
    return await client.submit(http, stack.gateway_url, {name: (TEST_DATA / name).read_bytes() for name in names})


async def wait_finished(http: aiohttp.ClientSession, stack: LocalStack, job_id: str, timeout_s: float = 600) -> Any:
    return await client.wait_finished(http, stack.gateway_url, job_id, timeout_s=timeout_s)


async def document_text(http: aiohttp.ClientSession, stack: LocalStack, job_id: str, doc_id: str) -> str:
    return await client.document_text(http, stack.gateway_url, job_id, doc_id)


async def test_a_batch_of_real_scans_comes_out_complete_and_accurate(stack: LocalStack, http: aiohttp.ClientSession):
    """linn.png, skew.pdf, cardinal.pdf (four directions), c02-22.pdf and typewriter.png in one job:
    the job completes, every page is done once, per-node pages add up to the job's, and the
    linn-family pages read with at most 3 % character error rate."""
    names = ["linn.png", "skew.pdf", "cardinal.pdf", "c02-22.pdf", "typewriter.png"]
    job_id = await submit(http, stack, names)
    status = await wait_finished(http, stack, job_id)

    progress = status["progress"]
    assert status["status"] == "completed", status
    assert progress["pages_total"] == 8
    assert progress["pages_done"] == progress["pages_total"]
    assert progress["pages_failed"] == 0
    assert sum(node["pages_done"] for node in status["nodes"].values()) == progress["pages_done"]
    assert len(status["nodes"]) == 2, "both workers took pages"

    documents = {document["filename"]: document for document in status["documents"]}
    truth = (TEST_DATA / "linn.txt").read_text()
    rates: dict[str, float] = {}
    for name in ("linn.png", "skew.pdf", "cardinal.pdf"):
        pages = (await document_text(http, stack, job_id, documents[name]["doc_id"])).split("\f")
        assert len(pages) == documents[name]["pages"]
        for number, text in enumerate(pages, 1):
            rates[f"{name}#{number}"] = character_error_rate(text, truth)
    print("character error rates:", {page: f"{rate:.2%}" for page, rate in rates.items()})
    assert all(rate <= MAX_CER for rate in rates.values()), rates
    typewriter = await document_text(http, stack, job_id, documents["typewriter.png"]["doc_id"])
    assert character_error_rate(typewriter, (TEST_DATA / "typewriter.txt").read_text()) <= MAX_CER

    # The searchable PDF of the rotated pages reads back as the text does.
    async with http.get(
        f"{stack.gateway_url}/api/bulk/jobs/{job_id}/documents/{documents['cardinal.pdf']['doc_id']}/pdf"
    ) as response:
        assert response.status == 200
        with pdfium.PdfDocument(await response.read()) as pdf:
            layers = [pdf[index].get_textpage().get_text_range() for index in range(len(pdf))]
    assert len(layers) == 4
    assert all(character_error_rate(layer, truth) <= MAX_CER for layer in layers)

    # Quality signals come with each page, as the worker measured them: the rotated pages of
    # cardinal.pdf say how they were turned, and a clean scan reads with high confidence.
    async with http.get(f"{stack.gateway_url}/api/bulk/jobs/{job_id}/quality?per_page=100") as response:
        ranked = (await response.json())["pages"]
    assert len(ranked) == 8
    by_page = {(row["doc_id"], row["page"]): row["quality"] for row in ranked}
    rotations = [by_page[(documents["cardinal.pdf"]["doc_id"], number)]["rotation"] for number in range(1, 5)]
    assert rotations == [0, 270, 180, 90]
    linn = by_page[(documents["linn.png"]["doc_id"], 1)]
    assert linn["words"] > 300
    assert linn["mean_confidence"] > 0.9
    assert not linn["blank"]


def png_of(script: Script) -> bytes:
    buffer = io.BytesIO()
    render(script).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_pages_in_other_scripts_are_read_by_an_engine_for_their_script(
    stack: LocalStack, http: aiohttp.ClientSession
):
    """Jobs naming Russian and Greek, and one naming no language holding an Arabic page, are read
    by Tesseract (Russian and Greek at most 3 % CER, Arabic 5 %); a job naming Ukrainian, whose
    model is not installed, fails its page with the package to install; an unknown code is a 400."""
    gateway = stack.gateway_url
    jobs = {
        RUSSIAN: await client.submit(http, gateway, {"rus.png": png_of(RUSSIAN)}, language="rus"),
        GREEK: await client.submit(http, gateway, {"ell.png": png_of(GREEK)}, language="ell"),
        ARABIC: await client.submit(http, gateway, {"ara.png": png_of(ARABIC)}),
    }
    ukrainian = await client.submit(http, gateway, {"ukr.png": png_of(RUSSIAN)}, language="ukr")
    limits = {RUSSIAN: 0.03, GREEK: 0.03, ARABIC: 0.05}
    for script, job_id in jobs.items():
        status = await wait_finished(http, stack, job_id)
        assert status["status"] == "completed", status
        text = await document_text(http, stack, job_id, status["documents"][0]["doc_id"])
        assert character_error_rate(text, truth(script)) <= limits[script], (script.language, text)
    status = await wait_finished(http, stack, ukrainian)
    assert status["status"] == "failed", status
    assert "tesseract-ocr-ukr" in status["documents"][0]["error"]

    form = client.upload_form({"a.png": png_of(GREEK)}, language="gre,xx")
    async with http.post(f"{gateway}/api/bulk/jobs", data=form) as response:
        assert response.status == 400
        assert "ISO 639-3" in (await response.json())["error"]


async def test_a_corrupt_file_fails_alone_with_its_cause(stack: LocalStack, http: aiohttp.ClientSession):
    """invalid.pdf fails with the reason in the status while the other document of the job is read."""
    job_id = await submit(http, stack, ["invalid.pdf", "typewriter.png"])
    status = await wait_finished(http, stack, job_id)
    documents = {document["filename"]: document for document in status["documents"]}
    assert status["status"] == "partial"
    assert documents["invalid.pdf"]["status"] == "failed"
    assert "corrupt PDF" in documents["invalid.pdf"]["error"]
    assert documents["typewriter.png"]["status"] == "completed"
    assert status["progress"]["pages_done"] == status["progress"]["pages_total"] == 1
    text = await document_text(http, stack, job_id, documents["typewriter.png"]["doc_id"])
    assert "Linzensoep" in text or "linzensoep" in text.casefold()


def test_stack_writes_logs_per_service(stack: LocalStack):
    """Every service of `bulkocr up` logs JSON lines to its own file in the state folder."""
    for name in ("gateway", "ingest", "aggregator", "ocr-worker-1", "ocr-worker-2"):
        log = stack.state_dir / f"{name}.log"
        assert log.is_file(), name
    assert Path(stack.state_dir / "aggregator.log").read_text().count('"service": "aggregator"') > 0


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_every_service_answers_metrics_and_health_on_its_ops_port(stack: LocalStack, http: aiohttp.ClientSession):
    """Each process serves /metrics, /livez and /readyz; after a job the counters say what it did
    (an upload accepted, a page rendered, read and counted), and the stack's healthcheck command
    passes against a live service and fails against none."""
    job_id = await submit(http, stack, ["typewriter.png"])
    assert (await wait_finished(http, stack, job_id))["status"] == "completed"
    texts: dict[str, str] = {}
    async with aiohttp.ClientSession() as plain:  # the ops port needs no token
        for name in stack.processes:
            for probe in ("livez", "readyz"):
                async with plain.get(f"{stack.ops_url(name)}/{probe}") as response:
                    assert response.status == 200, (name, probe, await response.text())
            async with plain.get(f"{stack.ops_url(name)}/metrics") as response:
                assert response.status == 200, name
                texts[name] = await response.text()
    assert metric_total(texts["gateway"], "bulkocr_uploads_total", status="202") >= 1
    assert metric_total(texts["ingest"], "bulkocr_ingest_pages_rendered_total") >= 1
    workers = [text for name, text in texts.items() if name.startswith("ocr-worker")]
    assert sum(metric_total(text, "bulkocr_pages_total", outcome="done", engine="rapidocr") for text in workers) >= 1
    assert sum(metric_total(text, "bulkocr_ocr_seconds_count", engine="rapidocr") for text in workers) >= 1
    done = {"topic": "bulkocr.pages.done", "channel": "aggregator", "outcome": "finished"}
    assert metric_total(texts["aggregator"], "bulkocr_messages_total", **done) >= 1
    assert metric_total(texts["aggregator"], "bulkocr_aggregator_write_seconds_count") >= 1

    def healthcheck(port: int) -> int:
        environment = {**os.environ, "BULKOCR_OPS_PORT": str(port)}
        command = [sys.executable, "-m", "bulkocr.healthcheck", "readyz"]
        return subprocess.run(command, env=environment, capture_output=True, timeout=30, check=False).returncode

    assert healthcheck(stack.ops_ports["aggregator"]) == 0
    assert healthcheck(_closed_port()) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
