"""The web app in a real browser (Debian's chromium, driven by Playwright) against the whole
system on this machine and a fake Archipelago: what a curator sees and does, from signing in
to checking pages. A job's live updates and the viewer's turned pages are also driven with
answers the test scripts (Playwright's request routing), so they are exact."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from bulkocr_devstack.stack import LocalStack
from bulkocr_ocr_worker.orientation import turn_clockwise
from tests.fakes.archipelago import PASSWORD, USER, FakeArchipelago
from tests.pdf_builder import make_pdf

pytestmark = pytest.mark.e2e

TOKEN = "curator-token"
CHROMIUM = Path("/usr/bin/chromium")
DATA = Path(__file__).resolve().parents[1] / "data"
FAKE_JOB = "f" * 32
JOB_READ_TIMEOUT_MS = 150_000  # the real engine on three pages, on a shared two-core machine


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archipelago() -> Iterator[FakeArchipelago]:
    """The fake Archipelago on an event loop of its own thread: Playwright's sync API runs
    this module's tests without one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeArchipelago()
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(timeout=10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, archipelago: FakeArchipelago) -> Iterator[LocalStack]:
    environment = {
        **os.environ,
        "BULKOCR_API_TOKENS": f"curator:{TOKEN}",
        "BULKOCR_ARCHIPELAGO_URL": archipelago.url,
        "BULKOCR_ARCHIPELAGO_USER": USER,
        "BULKOCR_ARCHIPELAGO_PASSWORD": PASSWORD,
    }
    with LocalStack(tmp_path_factory.mktemp("stack"), workers=1, environment=environment) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the web app's tests drive Debian's chromium "
            "(`make setup` installs it: apt-get install -y chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser tab, and what it asked for and logged (to check no token went into an
    address and the Content-Security-Policy refused nothing)."""

    page: Page
    urls: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not [url for url in self.urls if TOKEN in url]
        assert not [line for line in self.console if "Content Security Policy" in line]


@pytest.fixture
def tab(browser: Browser, stack: LocalStack) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    opened = Tab(context.new_page())
    opened.page.on("request", lambda request: opened.urls.append(request.url))
    opened.page.on("console", lambda message: opened.console.append(message.text))
    opened.page.goto(stack.gateway_url)
    yield opened
    context.close()


def sign_in(page: Page, token: str = TOKEN) -> None:
    """Sign in, and wait until signed in: a place opened before the token is checked would
    be opened twice."""
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


# --- what a curator does -------------------------------------------------------------------


def test_a_curator_uploads_follows_checks_and_pushes_a_job(
    tab: Tab, stack: LocalStack, archipelago: FakeArchipelago, tmp_path: Path
):
    """Sign in (a wrong token is refused), upload a scan and a two-page PDF with the file
    picker, follow the job to completed live, download a text and a searchable PDF, read the
    scan in the viewer (its word boxes on its ink), turn the PDF's pages, open the quality view
    (blank pages first), push to Archipelago and see its links, and sign out; no token in any
    address."""
    page = tab.page
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("The gateway does not know this token.")
    sign_in(page)
    expect(page.get_by_role("heading", name="Upload scans")).to_be_visible()

    blank = tmp_path / "two-blank-pages.pdf"
    blank.write_bytes(make_pdf([(300, 300), (300, 300)]))
    page.locator("#files").set_input_files([DATA / "typewriter.png", blank])
    expect(page.locator("#chosen-summary")).to_have_text(re.compile(r"^2 files · "))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-state")).to_contain_text("queued")
    expect(page.locator("#jobs a")).to_have_count(1)

    page.locator("#jobs a").click()
    expect(page.locator("#job-status")).to_have_text("completed", timeout=JOB_READ_TIMEOUT_MS)
    expect(page.locator("#job-progress")).to_contain_text("3 of 3 pages read · 0 failed")
    expect(page.locator("#documents tr")).to_have_count(2)
    expect(page.locator("#nodes tr")).to_have_count(1)
    expect(page.locator("#nodes td").nth(1)).to_have_text("3")  # pages read on the one node

    typewriter = page.locator("#documents tr", has_text="typewriter.png")
    with page.expect_download() as downloaded:
        typewriter.get_by_role("button", name="txt", exact=True).click()
    assert "linzensoep" in Path(downloaded.value.path()).read_text().casefold()
    with page.expect_download() as downloaded:
        typewriter.get_by_role("button", name="pdf", exact=True).click()
    with pdfium.PdfDocument(downloaded.value.path()) as searchable:  # its text layer reads back
        assert "linzensoep" in searchable[0].get_textpage().get_text_range().casefold()

    typewriter.get_by_role("link", name="view").click()
    expect(page.locator("#viewer-title")).to_have_text("typewriter.png · page 1 of 1")
    expect(page.locator("#viewer-text")).to_contain_text(re.compile("linzensoep", re.IGNORECASE))
    expect(page.locator("#viewer-scan image")).to_have_attribute("href", re.compile(r"^blob:"))
    assert page.locator("#viewer-scan rect.word").count() > 50
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    inside, overall = ink_under_boxes(page)
    assert inside > 2 * overall, (inside, overall)

    page.get_by_role("link", name="Back to the job").click()
    page.locator("#documents tr", has_text="two-blank-pages.pdf").get_by_role("link", name="view").click()
    expect(page.locator("#viewer-title")).to_have_text("two-blank-pages.pdf · page 1 of 2")
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#viewer-title")).to_have_text("two-blank-pages.pdf · page 2 of 2")
    expect(page.locator("#viewer-summary")).to_contain_text("0 words")
    expect(page.locator("#viewer-text")).to_have_text("No text was found on this page.")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-title")).to_have_text("two-blank-pages.pdf · page 1 of 2")

    page.get_by_role("link", name="Quality").click()
    rows = page.locator("#quality-pages tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("two-blank-pages.pdf")
    expect(rows.nth(0)).to_contain_text("blank")
    expect(rows.nth(2)).to_contain_text("typewriter.png")
    rows.nth(2).locator("td").nth(3).click()  # a row opens its page, not only its link
    expect(page.locator("#viewer-title")).to_have_text("typewriter.png · page 1 of 1")

    page.get_by_role("link", name="Back to the job").click()
    page.get_by_role("button", name="Push to Archipelago").click()
    expect(page.locator("#push-message")).to_contain_text("Push queued")
    expect(page.locator("#push-state")).to_contain_text("completed", timeout=60_000)
    pushed = page.locator("#push-state a", has_text="typewriter.png")
    expect(pushed).to_have_attribute("href", re.compile(rf"^{re.escape(archipelago.url)}/do/"))

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    tab.assert_clean()


def ink_under_boxes(page: Page, margin: float = 0.0) -> tuple[float, float]:
    """How much of the drawn scan is ink (dark pixels) under the word boxes, and overall,
    measured on a screenshot of the scan with its boxes hidden."""
    boxes = page.evaluate(
        """() => {
          const frame = document.querySelector('#viewer-scan svg').getBoundingClientRect();
          return [...document.querySelectorAll('#viewer-scan rect.word')].map((rect) => {
            const box = rect.getBoundingClientRect();
            return [box.left - frame.left, box.top - frame.top, box.right - frame.left, box.bottom - frame.top];
          });
        }"""
    )
    page.get_by_label("word boxes").uncheck()
    shot = Image.open(io.BytesIO(page.locator("#viewer-scan svg").screenshot())).convert("L")
    page.get_by_label("word boxes").check()
    ink = shot.point(lambda value: 255 if value < 128 else 0)
    inside = covered = 0
    for x0, y0, x1, y1 in boxes:
        crop = ink.crop((round(x0 + margin), round(y0 + margin), round(x1 - margin), round(y1 - margin)))
        inside += sum(crop.histogram()[255:])
        covered += crop.width * crop.height
    return inside / covered, sum(ink.histogram()[255:]) / (shot.width * shot.height)


# A drop of a folder and a file, as a browser hands them to the page: entries, a folder's
# read in batches until an empty one. Synthetic drags carry no entries, so they are built here.
DROP_A_FOLDER = """() => {
  const file = (path, text) => ({ isFile: true, isDirectory: false, fullPath: `/${path}`,
    file: (ok) => ok(new File([text], path.split("/").pop())) });
  const folder = (path, children) => ({ isFile: false, isDirectory: true, fullPath: `/${path}`,
    createReader: () => { const batches = [children.slice(0, 2), children.slice(2)];
      return { readEntries: (ok) => ok(batches.shift() || []) }; } });
  const scans = folder("scans", [file("scans/a.png", "a"), file("scans/.DS_Store", "x"),
    folder("scans/box1", [file("scans/box1/b.png", "bb")])]);
  const items = [scans, file("loose.png", "ccc")].map((entry) => ({ webkitGetAsEntry: () => entry }));
  const drop = new Event("drop", { bubbles: true, cancelable: true });
  Object.defineProperty(drop, "dataTransfer", { value: { items, files: [] } });
  document.getElementById("drop").dispatchEvent(drop);
}"""


def test_a_dropped_folder_is_sent_whole_with_each_files_path(tab: Tab):
    """Every file under a dropped folder is chosen with its path in the folder (its last
    entries in a second batch), hidden files are left out, and the upload sends them and
    the options as one job, with the token in a header."""
    page = tab.page
    sign_in(page)
    page.evaluate(DROP_A_FOLDER)
    expect(page.locator("#chosen-summary")).to_have_text("3 files · 6 B")
    expect(page.locator("#chosen li")).to_have_text(["loose.png", "scans/a.png", "scans/box1/b.png"])
    sent: list[tuple[bytes, str | None]] = []

    def submit(route: Route) -> None:
        sent.append((route.request.post_data_buffer or b"", route.request.headers.get("authorization")))
        route.fulfill(status=202, json={"job_id": FAKE_JOB, "status_url": f"/api/bulk/status/{FAKE_JOB}"})

    page.route("**/api/bulk/jobs", lambda route: submit(route) if route.request.method == "POST" else route.fallback())
    options = page.locator("#upload-form")
    options.get_by_label("DPI").fill("200")
    options.get_by_label("PDF").check()
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-state")).to_contain_text(f"Job {FAKE_JOB[:12]} queued")
    ((body, authorization),) = sent
    assert authorization == f"Bearer {TOKEN}"
    filenames = re.findall(rb'name="files"; filename="([^"]+)"', body)
    assert filenames == [b"loose.png", b"scans/a.png", b"scans/box1/b.png"]
    assert re.search(rb'name="dpi"\r\n\r\n200\r\n', body)
    assert re.search(rb'name="formats"\r\n\r\ntxt,json,pdf\r\n', body)
    tab.assert_clean()


# --- exact answers, scripted ---------------------------------------------------------------


def status_body(status: str, done: int, total: int, nodes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A status route's body, as the gateway answers it."""
    return {
        "job_id": FAKE_JOB,
        "status": status,
        "progress": {"pages_total": total, "pages_done": done, "pages_failed": 0, "percent": 100 * done / total},
        "documents": [],
        "documents_total": 1,
        "documents_by_status": {status: 1},
        "failed_documents": [],
        "failed_documents_total": 0,
        "documents_url": f"/api/bulk/jobs/{FAKE_JOB}/documents?page=1&per_page=100",
        "nodes": nodes or {},
        "archipelago_result": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "eta_seconds": None,
    }


def script_documents(page: Page) -> None:
    body = {"job_id": FAKE_JOB, "documents": [], "page": 1, "per_page": 50, "total": 0}
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/documents?*", lambda route: route.fulfill(json=body | NO_PAGES))


NO_PAGES = {"next_url": None, "prev_url": None}


def test_the_job_page_follows_the_event_stream(tab: Tab, stack: LocalStack):
    """When the gateway answers text/event-stream, the page reads it with the token in a
    header: the snapshot, then a progress event (its data on two lines) move the counts and
    nodes while the status route is not answered at all."""
    page = tab.page
    sign_in(page)
    reads: list[Route] = []
    streamed: list[str | None] = []

    def status(route: Route) -> None:
        reads.append(route)
        if len(reads) == 1:  # the first read, before the stream; later ones are never answered
            route.fulfill(json=status_body("processing", 0, 4))

    def events(route: Route) -> None:
        streamed.append(route.request.headers.get("authorization"))
        progress = {
            "status": "processing",
            "pages_total": 4,
            "pages_done": 3,
            "pages_failed": 0,
            "documents_by_status": {"processing": 1},
            "nodes": {"node-b": {"pages_done": 2, "pages_failed": 0, "busy_seconds": 4.0}},
        }
        lines = json.dumps(progress, indent=1).split("\n")
        body = (
            f"id: 1\nevent: snapshot\ndata: {json.dumps(status_body('processing', 1, 4))}\n\n"
            ": keep-alive\n\n"
            f"id: 2\nevent: progress\ndata: {lines[0]}\ndata: {' '.join(lines[1:])}\n\n"
        )
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route(f"**/api/bulk/status/{FAKE_JOB}", status)
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/events", events)
    script_documents(page)
    page.goto(f"{stack.gateway_url}/#/jobs/{FAKE_JOB}")
    expect(page.locator("#job-progress")).to_contain_text("3 of 4 pages read")
    expect(page.locator("#nodes")).to_contain_text("node-b")
    assert streamed == [f"Bearer {TOKEN}"]
    for route in reads[1:]:
        route.abort()
    tab.assert_clean()


def test_the_job_page_polls_the_status_without_an_event_stream(tab: Tab, stack: LocalStack):
    """An events route that answers 404 (a gateway without it): the page reads the status
    every 2 s until the job has finished."""
    page = tab.page
    sign_in(page)
    answers = [status_body("processing", 1, 4), status_body("processing", 2, 4), status_body("completed", 4, 4)]
    asked: list[int] = []

    def status(route: Route) -> None:
        asked.append(1)
        route.fulfill(json=answers[min(len(asked), len(answers)) - 1])

    page.route(f"**/api/bulk/status/{FAKE_JOB}", status)
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/events", lambda route: route.fulfill(status=404, json={"error": "no"}))
    script_documents(page)
    page.goto(f"{stack.gateway_url}/#/jobs/{FAKE_JOB}")
    expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#job-progress")).to_contain_text("4 of 4 pages read")
    assert len(asked) >= 3
    tab.assert_clean()


def test_failed_pages_show_their_cause_and_can_be_read_again(tab: Tab, stack: LocalStack):
    """A finished job with a failed page: its document is listed with the page and its
    cause, the page opens in the viewer, and "Retry failed pages" asks the gateway to read
    it again."""
    page = tab.page
    sign_in(page)
    document = {"doc_id": "d0001", "filename": "book.pdf", "pages": 2, "status": "partial", "error": None}
    finished = status_body("partial", 1, 2) | {"failed_documents": [document], "failed_documents_total": 1}
    finished["progress"] |= {"pages_failed": 1, "percent": 100}
    pages = [{"page": 1, "status": "done"}, {"page": 2, "status": "failed", "error": "the engine crashed"}]
    result = {"job_id": FAKE_JOB, "doc_id": "d0001", "filename": "book.pdf", "page_count": 2, "pages": pages}
    retried: list[str] = []

    def retry(route: Route) -> None:
        retried.append(route.request.method)
        route.fulfill(status=202, json={"job_id": FAKE_JOB, "status": "retrying", "pages_failed": 1})

    page.route(f"**/api/bulk/status/{FAKE_JOB}", lambda route: route.fulfill(json=finished))
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/events", lambda route: route.fulfill(status=404, json={"error": "no"}))
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/documents/d0001/json", lambda route: route.fulfill(json=result))
    page.route(f"**/api/bulk/jobs/{FAKE_JOB}/retry-failed", retry)
    script_documents(page)
    page.goto(f"{stack.gateway_url}/#/jobs/{FAKE_JOB}")
    failed = page.locator("#failed-section")
    expect(failed).to_contain_text("book.pdf partial")
    failed.get_by_role("button", name="failed pages").click()
    expect(page.locator("#failed-pages li")).to_have_text(["book.pdf, page 2: the engine crashed view"])
    expect(page.locator("#failed-pages a")).to_have_attribute("href", f"#/jobs/{FAKE_JOB}/documents/d0001/pages/2")
    page.get_by_role("button", name="Retry failed pages").click()
    expect(page.locator("#job-message")).to_have_text("Reading 1 failed page(s) again…")
    assert retried == ["POST"]
    tab.assert_clean()


# Upright page, its "words" (left, top, right, bottom), placed so that any wrong turn misses them.
UPRIGHT = (600, 400)
WORDS = [(40, 30, 220, 70), (380, 250, 560, 290), (60, 320, 160, 370)]
WORDS_SHARE = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in WORDS) / (UPRIGHT[0] * UPRIGHT[1])


def turned_page(number: int, rotation: int) -> tuple[dict[str, Any], bytes]:
    """Page `number` of a scripted document as the JSON route and the image route answer it:
    boxes in the upright page, and the image as ingest stored it, before OCR turned it
    `rotation` degrees clockwise (checked against the worker's own turn)."""
    upright = Image.new("L", UPRIGHT, 255)
    draw = ImageDraw.Draw(upright)
    for box in WORDS:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=0)
    source = upright.rotate(rotation, expand=True)  # Pillow turns counter-clockwise
    assert turn_clockwise(source, rotation).tobytes() == upright.tobytes()
    words = [
        {"text": f"w{i}", "box": {"x0": x0, "y0": y0, "x1": x1, "y1": y1}, "confidence": 0.5 if i else 0.99}
        for i, (x0, y0, x1, y1) in enumerate(WORDS)
    ]
    text = " ".join(f"w{i}" for i in range(len(WORDS)))
    line = {"text": text, "box": words[0]["box"], "confidence": 0.7, "words": words}
    view = {"page": number, "status": "done", "width": UPRIGHT[0], "height": UPRIGHT[1], "rotation": rotation}
    view |= {"engine": "test", "blocks": [{"box": words[0]["box"], "lines": [line]}], "quality": None}
    body = {"job_id": FAKE_JOB, "doc_id": "d0001", "filename": "cardinal.pdf", "page_count": 4, "pages": [view]}
    png = io.BytesIO()
    source.save(png, format="PNG")
    return body, png.getvalue()


def test_the_viewer_turns_each_scan_as_ocr_did_so_boxes_sit_on_the_words(tab: Tab, stack: LocalStack):
    """Four pages turned as in cardinal.pdf (0, 270, 180 and 90 degrees): on each, the word
    boxes cover the words' ink and the rest of the page is blank; doubtful words are marked."""
    page = tab.page
    sign_in(page)
    rotations = [0, 270, 180, 90]
    pages = {number: turned_page(number, rotation) for number, rotation in enumerate(rotations, 1)}
    base = f"**/api/bulk/jobs/{FAKE_JOB}/documents/d0001"

    def image_of(route: Route) -> bytes:
        return pages[int(route.request.url.split("/")[-2])][1]

    page.route(re.compile(r".*/json\?page=\d+$"), lambda route: route.fulfill(json=pages[page_of(route)][0]))
    page.route(f"{base}/pages/*/image", lambda route: route.fulfill(content_type="image/png", body=image_of(route)))

    page.goto(f"{stack.gateway_url}/#/jobs/{FAKE_JOB}/documents/d0001/pages/1")
    for number, rotation in enumerate(rotations, 1):
        expect(page.locator("#viewer-title")).to_have_text(f"cardinal.pdf · page {number} of 4")
        expect(page.locator("#viewer-scan image")).to_have_attribute("href", re.compile(r"^blob:"))
        inside, overall = ink_under_boxes(page, margin=2)
        assert inside > 0.95, (rotation, inside)
        assert abs(overall - WORDS_SHARE) < 0.02, (rotation, overall)  # the scan fills the page, unstretched
        expect(page.locator("#viewer-scan rect.doubtful")).to_have_count(2)
        expect(page.locator("#viewer-text .doubtful")).to_have_count(2)
        if number < 4:
            page.get_by_role("button", name="Next page").click()
    tab.assert_clean()


def page_of(route: Route) -> int:
    return int(route.request.url.rsplit("=", 1)[-1])
