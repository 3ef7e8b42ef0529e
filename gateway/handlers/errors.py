"""REST errors as ``{"error":{"code","message"}}`` with the error's HTTP status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from ..errors import GatewayError

log = structlog.get_logger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc.http_status, exc.code, exc.message)
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
