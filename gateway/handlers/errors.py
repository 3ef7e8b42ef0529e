"""REST errors as ``{"error":{"code","message"}}`` with the error's HTTP status, and the
JSON body reader whose every failure is one of them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from ..errors import BadJson, GatewayError, InternalError

log = structlog.get_logger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def json_body(request: web.Request) -> Any:
    """The request's body as JSON; 400 ``bad_json`` for anything that is not (bytes that are
    not UTF-8, bad syntax, nesting too deep for the parser, numbers too long to convert)."""
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BadJson("the body is not valid JSON") from None


def error_response(status: int, code: str, message: str, **fields: Any) -> web.Response:
    """``{"error": {"code", "message", ...fields}}`` with ``status``."""
    body = {"error": {"code": code, "message": message, **fields}}
    return web.json_response(body, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        fields = exc.fields()
        response = error_response(exc.http_status, exc.code, exc.message, **fields)
        if "retry_after_s" in fields:
            response.headers["Retry-After"] = str(fields["retry_after_s"])
        return response
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", "the request body is over the size limit")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.reason)
        for name, value in exc.headers.items():  # e.g. Allow on 405 (RFC 9110)
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response
    except Exception:  # a bug: still a JSON error, and the traceback in the log
        log.exception("request failed", path=request.path)
        error = InternalError()
        return error_response(error.http_status, error.code, error.message)
