"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
