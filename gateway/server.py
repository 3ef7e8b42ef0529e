"""Running the app: event loop choice, listening socket, signals, exit status."""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import sys

import structlog
from aiohttp import web

from . import heap, keys
from .app import create_app
from .config import Config
from .logs import AccessLogger

log = structlog.get_logger("gateway")


def _event_loop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class AddressUnavailable(Exception):
    """The listening socket could not be opened; the message names the address and the fix."""


def serve(config: Config, *, host: str | None = None, port: int | None = None) -> int:
    """Serve until SIGINT or SIGTERM, shut down gracefully, return the exit status: 0, or 2
    (one line on stderr) when the address cannot be listened on."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory) as runner:
            runner.run(_serve(create_app(config), host, port, config))
    except AddressUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def listen_error(exc: OSError, host: str, port: int) -> AddressUnavailable:
    """The one-line error for a listening socket that could not be opened."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        why = "already in use"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "not allowed for this user"
    else:
        why = exc.strerror or str(exc)
    return AddressUnavailable(
        f"cannot listen on {address}: {why} (choose another with --port or server.port)"
    )


async def _serve(app: web.Application, host: str, port: int, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLogger,
        shutdown_timeout=config.server.shutdown_grace_s,
        # aiohttp closes a connection whose handler is idle this long after it opened or
        # after its last response: a client that has not sent a whole request head by
        # then (a slow-loris socket) or an idle keep-alive connection. Upgraded sockets
        # and requests being answered are not idle.
        keepalive_timeout=config.server.header_timeout_s,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(exc, host, port) from None
        # Everything allocated so far (modules, the app) lives as long as the process: keep it
        # out of the collector's full passes, which otherwise stall the loop as the heap grows.
        gc.freeze()
        # A young collection every 7 000 allocations instead of 700: a socket's handshake
        # allocates a few thousand objects, nearly all freed by reference counting; at 700 the
        # collector ran several times per handshake (what that cost: docs/performance.md).
        gc.set_threshold(7000, 20, 10)
        heap.map_big_blocks()  # big short-lived buffers are mapped, never holes in the heap
        log.info(
            "serving",
            url=f"http://{host}:{port}/",
            upstream=config.upstream.kind,
            offline_demo=config.offline_demo,
            redis=bool(config.redis.url),
            instance=app[keys.INSTANCE_ID],
        )
        await stop.wait()
        log.info("shutting down", grace_s=config.server.shutdown_grace_s)
    finally:
        await runner.cleanup()
    log.info("stopped")
