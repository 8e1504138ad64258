"""The web page at `/` and the two files it loads, read once at start and served to anyone
(they hold no data: the page asks for a token itself)."""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from bulkocr_gateway.keys import PAGE_FILES

# Path -> (file in this package, media type). The page's code and styles are files rather
# than inline blocks so the Content-Security-Policy (security.py) allows nothing inline.
PAGE = {
    "/": ("index.html", "text/html"),
    "/page.js": ("page.js", "text/javascript"),
    "/page.css": ("page.css", "text/css"),
}


def read_page_files() -> dict[str, bytes]:
    package = files("bulkocr_gateway")
    return {path: package.joinpath(name).read_bytes() for path, (name, _) in PAGE.items()}


async def page_file(request: web.Request) -> web.Response:
    _, media_type = PAGE[request.path]
    return web.Response(body=request.app[PAGE_FILES][request.path], content_type=media_type, charset="utf-8")


page_routes = [web.get(path, page_file) for path in PAGE]
