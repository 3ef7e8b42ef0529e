"""Running the app: event loop choice, listening socket, signals, exit status."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import signal
import sys
import threading

import structlog
from aiohttp import web

from . import heap, keys
from .app import create_app
from .config import Config
from .logs import AccessLogger

log = structlog.get_logger("gateway")

STOP_MARGIN_S = 10.0  # closing what is left after the replies' graces (docs/operations.md)
FORCED_EXIT = 1  # the exit status when the process stops before its shutdown has finished


def stop_deadline_s(config: Config) -> float:
    """How long after SIGTERM the process exits at the latest: the sockets' and the replies'
    graces (``server.shutdown_grace_s`` each) and :data:`STOP_MARGIN_S` for the rest."""
    return 2 * config.server.shutdown_grace_s + STOP_MARGIN_S


def _exit_now(why: str, loop: asyncio.AbstractEventLoop) -> None:
    """End the process at once, shutdown unfinished (the tasks still running are logged)."""
    try:
        running = sorted(task.get_name() for task in asyncio.all_tasks(loop))
    except RuntimeError:  # (read from the deadline's thread while the loop changes it)
        running = []
    log.error("shutdown did not finish: exiting now", why=why, tasks_running=running)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(FORCED_EXIT)


class _Stop:
    """SIGTERM and SIGINT: the first starts the shutdown and arms a deadline, a second one
    ends the process at once.

    Contract: :meth:`wait` returns once the first signal came (:meth:`signalled`, called
    on the event loop). From then on the process ends within ``deadline_s`` whatever is
    stuck (a timer thread, which fires even if the event loop is blocked): a shutdown that
    has not finished by then, or that a second signal interrupts, exits with status
    :data:`FORCED_EXIT` through ``os._exit`` (nothing more is cleaned up). :meth:`disarm`
    cancels the deadline once the shutdown has finished.
    """

    def __init__(self, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._event = asyncio.Event()
        self._timer: threading.Timer | None = None

    def signalled(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        if self._event.is_set():
            _exit_now(f"a second {name}", loop)
        self._event.set()
        why = f"still stopping {self._deadline_s:g} s after {name}"
        self._timer = threading.Timer(self._deadline_s, _exit_now, (why, loop))
        self._timer.daemon = True
        self._timer.start()

    async def wait(self) -> None:
        await self._event.wait()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


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
    (one line on stderr) when the address cannot be listened on. A shutdown that has not
    finished :func:`stop_deadline_s` after the signal, or that a second signal interrupts,
    ends the process with status 1 (:class:`_Stop`)."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    stop = _Stop(stop_deadline_s(config))
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory) as runner:
            runner.run(_serve(create_app(config), host, port, config, stop))
    except AddressUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:  # (after the runner's own end: it cancels and awaits what is left)
        stop.disarm()
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


async def _serve(app: web.Application, host: str, port: int, config: Config, stop: _Stop) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.signalled, sig.name)
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
        log.info(
            "shutting down",
            grace_s=config.server.shutdown_grace_s,
            deadline_s=stop_deadline_s(config),
        )
    finally:
        await runner.cleanup()
    log.info("stopped")
