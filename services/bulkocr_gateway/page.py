"""The web app at `/` and the files it loads (web/), read once at start and served to anyone:
they hold no data (the app asks for a token itself and sends it with each API request).

Each file is listed here, so what is public is exactly what this module names (auth.py)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import PurePosixPath

from aiohttp import web

from bulkocr_gateway.keys import PAGE_FILES

_MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# Small ES modules, no bundler: the browser loads each from /app/. Code and styles are files
# rather than inline blocks so the Content-Security-Policy (security.py) allows nothing inline.
_APP_FILES = (
    "app.css",
    "main.js",
    "api.js",
    "dom.js",
    "upload.js",
    "jobs.js",
    "job.js",
    "live.js",
    "push.js",
    "quality.js",
    "viewer.js",
)

# Path -> (file in web/, media type).
PAGE = {
    "/": ("index.html", "text/html"),
    **{f"/app/{name}": (name, _MEDIA_TYPES[PurePosixPath(name).suffix]) for name in _APP_FILES},
}


def read_page_files() -> dict[str, bytes]:
    folder = files("bulkocr_gateway").joinpath("web")
    return {path: folder.joinpath(name).read_bytes() for path, (name, _) in PAGE.items()}


async def page_file(request: web.Request) -> web.Response:
    _, media_type = PAGE[request.path]
    return web.Response(body=request.app[PAGE_FILES][request.path], content_type=media_type, charset="utf-8")


page_routes = [web.get(path, page_file) for path in PAGE]
