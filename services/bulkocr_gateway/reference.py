"""`GET /api/docs`: the OpenAPI document rendered as a plain reference page, on the server (no
script, nothing from elsewhere, so the Content-Security-Policy allows it as it is)."""

from __future__ import annotations

import functools
from html import escape
from typing import Any

from aiohttp import web

from bulkocr_gateway.openapi import openapi_document

reference_routes = web.RouteTableDef()


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#{escape(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " or ".join(_schema_name(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    return escape(str(schema.get("type", "any")))


def _content(content: dict[str, Any]) -> str:
    return ", ".join(f"{escape(media)} {_schema_name(body.get('schema', {}))}" for media, body in content.items())


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    rows = [f"<h3>{escape(method.upper())} <code>{escape(path)}</code></h3>", f"<p>{escape(operation['summary'])}</p>"]
    if operation.get("security") == []:
        rows.append("<p>No token needed.</p>")
    if operation["parameters"]:
        items = "".join(
            f"<li><code>{escape(p['name'])}</code> ({escape(p['in'])}{', required' if p.get('required') else ''})</li>"
            for p in operation["parameters"]
        )
        rows.append(f"<p>Parameters:</p><ul>{items}</ul>")
    if "requestBody" in operation:
        rows.append(f"<p>Body: {_content(operation['requestBody']['content'])}</p>")
    answers = "".join(
        f"<li>{escape(status)}: {_content(answer['content']) if 'content' in answer else 'no body'}</li>"
        for status, answer in operation["responses"].items()
    )
    rows.append(f"<p>Answers:</p><ul>{answers}</ul>")
    return "\n".join(rows)


def _model(name: str, schema: dict[str, Any]) -> str:
    fields = "".join(
        f"<li><code>{escape(field)}</code>: {_schema_name(spec)}</li>"
        for field, spec in schema.get("properties", {}).items()
    )
    return f'<h3 id="{escape(name)}">{escape(name)}</h3><ul>{fields}</ul>'


@functools.cache
def reference_page() -> str:
    document = openapi_document()
    operations = [
        _operation(method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    models = [_model(name, schema) for name, schema in sorted(document["components"]["schemas"].items())]
    title = f"{document['info']['title']} {document['info']['version']}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} API</title>'
        '<link rel="stylesheet" href="/page.css"></head><body>'
        f"<h1>{escape(title)}: the HTTP API</h1>"
        "<p>Every route needs <code>Authorization: Bearer &lt;token&gt;</code> unless it says otherwise. "
        'The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a>.</p>'
        "<h2>Routes</h2>" + "\n".join(operations) + "<h2>Models</h2>" + "\n".join(models) + "</body></html>"
    )


@reference_routes.get("/api/docs")
async def reference(request: web.Request) -> web.Response:
    return web.Response(text=reference_page(), content_type="text/html", charset="utf-8")
