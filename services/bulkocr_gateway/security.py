"""Headers that tell browsers what the gateway's answers may do, on every response."""

from __future__ import annotations

from aiohttp import web

# What the web app needs (page.py: its own scripts and stylesheet, requests to this origin,
# page images it fetched itself) and nothing else: no inline code, no other origin, no
# frames, no <base>.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        # The viewer fetches a page image with the token (an <img src> cannot send it) and
        # shows it from an object URL: only blob: images, none from any address.
        "img-src blob:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # frame-ancestors for browsers that predate it.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Links out of the page (to Archipelago) do not carry job ids in a Referer.
    "Referrer-Policy": "no-referrer",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook rather than a middleware: it runs as any response's headers
    are about to be sent, so it also covers what no middleware gets back as a response: the
    bundle a handler streams (its headers are sent from inside the handler) and the JSON
    errors raised by `fail()`, which aiohttp turns into responses after the middlewares."""
    response.headers.update(SECURITY_HEADERS)
