"""The aiohttp application: its middlewares, routes and the dependencies handlers read."""

from __future__ import annotations

from aiohttp import web

from bulkocr.mongo import ArchipelagoStore, DeadLetterStore
from bulkocr_gateway.auth import auth_middleware
from bulkocr_gateway.control import control_routes
from bulkocr_gateway.dead_letters import dead_letter_routes
from bulkocr_gateway.downloads import download_routes
from bulkocr_gateway.events import events_routes
from bulkocr_gateway.http import json_errors_middleware
from bulkocr_gateway.images import image_routes
from bulkocr_gateway.keys import (
    ARCHIPELAGO,
    BLOBS,
    DEAD_LETTERS,
    JOB_FEEDS,
    OWNERS_BY_TOKEN,
    PAGE_FILES,
    PUBLISHER,
    SETTINGS,
    STORE,
    Deps,
)
from bulkocr_gateway.metrics import metrics_middleware
from bulkocr_gateway.openapi import openapi_routes
from bulkocr_gateway.page import page_routes, read_page_files
from bulkocr_gateway.push import push_routes
from bulkocr_gateway.quality import quality_routes
from bulkocr_gateway.reference import reference_routes
from bulkocr_gateway.routes import routes
from bulkocr_gateway.security import add_security_headers
from bulkocr_gateway.webhooks import webhook_routes


def create_app(deps: Deps) -> web.Application:
    # Metrics outermost (they count what left), then errors, so a 401 from auth leaves as JSON too.
    app = web.Application(middlewares=[metrics_middleware, json_errors_middleware, auth_middleware])
    app[SETTINGS] = deps.settings
    app[STORE] = deps.store
    app[ARCHIPELAGO] = ArchipelagoStore(deps.store.db)
    app[DEAD_LETTERS] = DeadLetterStore(deps.store.db)
    app[JOB_FEEDS] = deps.feeds
    app[BLOBS] = deps.blobs
    app[PUBLISHER] = deps.publisher
    app[OWNERS_BY_TOKEN] = deps.settings.owners_by_token()
    app[PAGE_FILES] = read_page_files()
    # On every response, errors and streamed downloads included (security.py says why a hook).
    app.on_response_prepare.append(add_security_headers)

    async def end_streams(app: web.Application) -> None:
        # Open event streams would hold the shutdown for its whole grace: they end first.
        app[JOB_FEEDS].close()

    app.on_shutdown.append(end_streams)
    app.add_routes(page_routes)
    app.add_routes(routes)
    app.add_routes(control_routes)
    app.add_routes(download_routes)
    app.add_routes(image_routes)
    app.add_routes(push_routes)
    app.add_routes(openapi_routes)
    app.add_routes(reference_routes)
    app.add_routes(dead_letter_routes)
    app.add_routes(quality_routes)
    app.add_routes(events_routes)
    app.add_routes(webhook_routes)
    return app
