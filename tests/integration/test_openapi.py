"""`GET /api/openapi.json` describes the gateway as it is: every route of the app, and no other,
with the models its handlers answer with; it is served without a token."""

from __future__ import annotations

import re

from bulkocr_gateway.openapi import OPERATIONS
from bulkocr_gateway.page import PAGE

FORMAT_PATH = re.compile(r"/(pdf|hocr|alto|miniocr|txt)$")


def app_routes(api) -> set[tuple[str, str]]:
    """(method, path) of every route, the download route's formats in one `{fmt}`."""
    found = set()
    for route in api.server.app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if path in PAGE:
            continue
        found.add((route.method.lower(), path))
    return found


async def test_every_route_is_described_and_nothing_else(api):
    described = {(op.method, FORMAT_PATH.sub("/{fmt}", op.path)) for op in OPERATIONS}
    assert described == app_routes(api)


async def test_the_document_is_served_without_a_token_and_names_every_model(api):
    response = await api.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    referenced = set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', await response.text()))
    assert referenced <= set(schemas)
    status = document["paths"]["/api/bulk/status/{job_id}"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobStatusView"}
    assert {"pages_total", "pages_done", "pages_failed"} <= set(schemas["Progress"]["properties"])


async def test_the_reference_page_lists_every_route_and_model_without_a_token(api):
    """`/api/docs` renders the same document: every operation with its answers, every model
    with its fields, and no script (the page's security policy runs none inline)."""
    response = await api.get("/api/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    for op in OPERATIONS:
        assert f"{op.method.upper()} <code>{op.path}</code>" in page
    assert '<h3 id="JobStatusView">JobStatusView</h3>' in page
    assert "<code>pages_done</code>" in page
    assert "<script" not in page
