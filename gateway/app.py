"""The application factory: wiring only, no I/O. Each resource lives in its own cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import keys
from .config import Config
from .handlers import health
from .llm.client import make_session, make_upstream
from .llm.simulator import start_simulator


async def _simulator_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the built-in Qwen simulator on a loopback port when it is the upstream."""
    config = app[keys.CONFIG]
    if not config.offline_demo:
        app[keys.UPSTREAM_URL] = config.upstream.base_url
        yield
        return
    runner, url = await start_simulator("127.0.0.1", 0)
    app[keys.UPSTREAM_URL] = url
    try:
        yield
    finally:
        await runner.cleanup()


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """One pooled HTTP client session for every upstream request."""
    config = app[keys.CONFIG]
    async with make_session(config.upstream) as session:
        app[keys.CLIENT_SESSION] = session
        app[keys.UPSTREAM] = make_upstream(config.upstream, session, app[keys.UPSTREAM_URL])
        yield


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=config.limits.max_request_bytes)
    app[keys.CONFIG] = config
    app.cleanup_ctx.append(_simulator_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    health.setup(app)
    return app
