"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from .. import keys
from ..auth import request_identity
from ..errors import Forbidden
from ..metrics import CONTENT_TYPE

READY_PROBE_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every dependency answers; else 503 naming what is down."""
    app = request.app
    down: dict[str, str] = {}
    for name, probe in app[keys.READINESS].items():
        try:
            async with asyncio.timeout(READY_PROBE_TIMEOUT_S):
                await probe()
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            down[name] = f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
        except Exception as exc:  # a probe must never take the endpoint down
            down[name] = type(exc).__name__
    extra: dict[str, Any] = {}
    if keys.POOL in app:  # each pooled upstream's health (contract section 13)
        extra["upstreams"] = {s.name: s.as_json() for s in app[keys.POOL].states()}
    if down:
        return web.json_response({"status": "unavailable", "down": down, **extra}, status=503)
    return web.json_response({"status": "ready", **extra})


async def metrics(request: web.Request) -> web.Response:
    config = request.app[keys.CONFIG]
    if not config.server.public_metrics:
        identity = await request_identity(
            config.auth, request.app[keys.ANONYMOUS], request.headers, request.cookies
        )
        if not identity.admin:
            raise Forbidden("metrics are for admins on this gateway")
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
