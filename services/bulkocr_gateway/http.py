"""JSON responses and errors shared by the gateway's handlers and middlewares."""

from __future__ import annotations

import json
from typing import NoReturn

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

log = structlog.get_logger(__name__)

JSON = "application/json"


def json_response(model: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=model.model_dump_json(), status=status, content_type=JSON, headers=headers)


def fail(error: type[web.HTTPException], reason: str) -> NoReturn:
    """Stop the request with `error` and a JSON body that says why."""
    raise error(text=json.dumps({"error": reason}), content_type=JSON)


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps({"error": reason}), status=status, content_type=JSON, headers=headers)


@web.middleware
async def json_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON `{"error": reason}`, and never as a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == JSON:
            raise
        # aiohttp's own 404/405/413 carry plain text like "404: Not Found"; 405 keeps its Allow.
        kept = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return error_response(error.status, error.reason.lower(), kept)
    except ConnectionResetError:
        # The client went away mid-request (a dropped upload): nothing failed here, and the
        # answer goes nowhere.
        log.info("client_disconnected", method=request.method, path=request.path)
        return error_response(400, "the client disconnected before the request was read")
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(500, "internal error")
