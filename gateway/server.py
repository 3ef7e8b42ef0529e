"""Running the app: event loop choice, listening socket, signals, exit status."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web

from .app import create_app
from .config import Config

log = structlog.get_logger("gateway")


def _event_loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the process's exit status."""
    app = create_app(config)
    host = host or config.server.host
    port = config.server.port if port is None else port
    with contextlib.suppress(KeyboardInterrupt):
        with asyncio.Runner(loop_factory=_event_loop_factory) as runner:
            runner.run(_serve(app, host, port, config))
    return 0


async def _serve(app: web.Application, host: str, port: int, config: Config) -> None:
    runner = web.AppRunner(
        app,
        handle_signals=True,
        access_log=None,
        shutdown_timeout=config.server.shutdown_grace_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info(
        "serving",
        url=f"http://{host}:{port}/",
        upstream=config.upstream.kind,
        offline_demo=config.offline_demo,
        redis=bool(config.redis.url),
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
