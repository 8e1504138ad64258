"""The aiohttp application: its middlewares, routes and the dependencies handlers read."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from bulkocr_gateway.auth import auth_middleware
from bulkocr_gateway.http import json_errors_middleware
from bulkocr_gateway.keys import BLOBS, INDEX_HTML, OWNERS_BY_TOKEN, PUBLISHER, SETTINGS, STORE, Deps
from bulkocr_gateway.routes import routes


def create_app(deps: Deps) -> web.Application:
    # Errors outermost, so a 401 from auth leaves as JSON too.
    app = web.Application(middlewares=[json_errors_middleware, auth_middleware])
    app[SETTINGS] = deps.settings
    app[STORE] = deps.store
    app[BLOBS] = deps.blobs
    app[PUBLISHER] = deps.publisher
    app[OWNERS_BY_TOKEN] = deps.settings.owners_by_token()
    app[INDEX_HTML] = files("bulkocr_gateway").joinpath("index.html").read_bytes()
    app.add_routes(routes)
    return app
