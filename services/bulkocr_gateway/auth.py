"""Bearer-token authentication: every route but the public ones needs a known token."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkocr_gateway.http import fail
from bulkocr_gateway.keys import OWNER, OWNERS_BY_TOKEN
from bulkocr_gateway.page import PAGE

# The web page and its files hold no data (it asks for a token itself); /health is for load balancers.
PUBLIC_PATHS = frozenset({*PAGE, "/health", "/api/openapi.json", "/api/docs"})


def owner_for(token: str, owners_by_token: dict[str, str]) -> str | None:
    """The owner of `token`, compared in constant time against every known token."""
    found: str | None = None
    for known, owner in owners_by_token.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = owner
    return found


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        fail(web.HTTPUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
    owner = owner_for(token.strip(), request.app[OWNERS_BY_TOKEN])
    if owner is None:
        fail(web.HTTPUnauthorized, "unknown token")
    request[OWNER] = owner
    return await handler(request)
