"""The gateway's answers carry the browser security headers, whatever answers: the web page,
its files, JSON routes, a streamed download and the errors; and the page needs nothing the
Content-Security-Policy forbids."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bulkocr_gateway.page import PAGE

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]

ALICE = {"Authorization": "Bearer alice-token"}


def assert_security_headers(response: aiohttp.ClientResponse) -> None:
    headers = response.headers
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in (part.strip() for part in headers.get("Content-Security-Policy", "").split(";"))
        if directive
    }
    where = f"{response.method} {response.url.path} ({response.status})"
    assert policy.get("default-src") == ["'none'"], where
    assert policy.get("frame-ancestors") == ["'none'"], where
    assert not any("'unsafe-inline'" in sources or "'unsafe-eval'" in sources for sources in policy.values()), where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where


async def test_the_page_and_its_files_carry_the_headers(api: Client):
    """/ and the app's modules and stylesheet (public) each answer with every header."""
    for path in PAGE:
        response = await api.get(path)
        assert response.status == 200, path
        assert_security_headers(response)


async def test_json_routes_and_a_streamed_download_carry_the_headers(api: Client):
    """/health, an authenticated JSON list, and a job's bundle.zip, whose headers the handler
    sends itself before it streams the zip."""
    for path in ("/health", "/api/bulk/jobs"):
        response = await api.get(path, headers=ALICE)
        assert (response.status, response.content_type) == (200, "application/json"), path
        assert_security_headers(response)
    form = aiohttp.FormData()
    form.add_field("files", io.BytesIO(b"not really a scan"), filename="a.png", content_type="image/png")
    submitted = await api.post("/api/bulk/jobs", data=form, headers=ALICE)
    assert submitted.status == 202, await submitted.text()
    job_id = (await submitted.json())["job_id"]
    bundle = await api.get(f"/api/bulk/jobs/{job_id}/bundle.zip", headers=ALICE)
    assert (bundle.status, bundle.content_type) == (200, "application/zip")
    await bundle.read()
    assert_security_headers(bundle)


async def test_errors_carry_the_headers(api: Client):
    """A 401 raised by the auth middleware, aiohttp's own 404 and 405, and a handler's 404."""
    unauthorized = await api.get("/api/bulk/jobs")
    assert unauthorized.status == 401
    missing_route = await api.get("/api/nothing", headers=ALICE)
    assert missing_route.status == 404
    wrong_method = await api.delete("/api/bulk/jobs", headers=ALICE)
    assert wrong_method.status == 405
    missing_job = await api.get("/api/bulk/status/0123456789abcdef0123456789abcdef", headers=ALICE)
    assert missing_job.status == 404
    for response in (unauthorized, missing_route, wrong_method, missing_job):
        assert response.content_type == "application/json"
        assert_security_headers(response)


def _same_origin(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


class _InlineCode(HTMLParser):
    """What in a page the policy above would block: inline scripts and styles, style
    attributes, event-handler attributes, and anything loaded from another origin."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and not named.get("src"):
            self.found.append("<script> without src")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if name in ("src", "href") and not _same_origin(value or ""):
                self.found.append(f"{tag} {name}={value}")
        self._open = tag

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "script" and data.strip():
            self.found.append("inline script code")


async def test_the_page_needs_nothing_the_policy_forbids(api: Client):
    """No inline script, style block, style or on* attribute, and no file from another
    origin: the page works under `script-src 'self'; style-src 'self'`."""
    page = _InlineCode()
    page.feed(await (await api.get("/")).text())
    assert page.found == []


async def test_the_app_never_turns_data_into_markup_or_code(api: Client):
    """File names, OCR'd words and error messages reach the page as text: no module sets
    HTML (innerHTML, outerHTML, insertAdjacentHTML, document.write) or runs strings as code
    (eval, Function, string timers), which the policy would refuse or an injected name abuse."""
    forbidden = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(")
    found = []
    for path in PAGE:
        if path.endswith(".js"):
            code = await (await api.get(path)).text()
            found += [f"{path}: {name}" for name in forbidden if name in code]
            found += [f"{path}: string timer" for _ in re.finditer(r"set(?:Timeout|Interval)\(\s*[\"'`]", code)]
    assert found == []
