"""The application factory: wiring only, no I/O. Each resource lives in its own cleanup_ctx.

Shutdown runs in this order (aiohttp's): stop listening; ``on_shutdown`` closes every
socket with 1001 ``going away``; the cleanup contexts unwind in reverse: running replies
get ``server.shutdown_grace_s`` to finish into the resume store, then the upstream
session closes, then the simulator (when it was the upstream) stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from yarl import URL

from . import keys
from .chat import Chat
from .config import Config
from .conversations import MemoryConversationStore
from .handlers import admin, chat, conversations, generations, health, pages
from .handlers.errors import json_errors
from .llm.client import make_session, make_upstream
from .llm.simulator import start_simulator
from .metrics import Metrics
from .ratelimits import RateLimiter
from .registry import Registry
from .replies import ReplyStore
from .rooms import Rooms


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


async def _upstream_reachable(app: web.Application) -> None:
    """Readiness: a TCP connection to the upstream's host opens (no request, no billing)."""
    url = URL(app[keys.UPSTREAM_URL])
    _, writer = await asyncio.open_connection(url.host, url.port)
    writer.close()
    await writer.wait_closed()


async def _chat_ctx(app: web.Application) -> AsyncIterator[None]:
    """Conversations, reply logs and rooms; on the way out, running replies get a grace."""
    config = app[keys.CONFIG]
    replies = ReplyStore(config.limits.resume_window_s)
    app[keys.CHAT] = chat_service = Chat(
        config,
        app[keys.UPSTREAM],
        MemoryConversationStore(config.limits.history_max_messages),
        replies,
        Rooms(),
        RateLimiter(config.limits.messages_per_minute),
        app[keys.METRICS],
    )
    try:
        yield
    finally:
        await chat_service.drain(config.server.shutdown_grace_s)
        replies.close()


async def _watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    """One task enforces every socket's send deadline (cheaper than a timeout per frame)."""
    config = app[keys.CONFIG]
    task = asyncio.create_task(
        app[keys.REGISTRY].watch_sends(config.limits.slow_consumer_timeout_s), name="send watchdog"
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    await app[keys.REGISTRY].close_all(1001, "going away")
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[keys.SOCKETS]
    for ws in list(sockets):  # sockets still authenticating, and generation watches
        await ws.close(code=1001, message=b"going away")


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=config.limits.max_request_bytes, middlewares=[json_errors]
    )
    app[keys.CONFIG] = config
    app[keys.INSTANCE_ID] = config.server.instance_id or f"{socket.gethostname()}:{os.getpid()}"
    app[keys.METRICS] = metrics = Metrics()
    app[keys.REGISTRY] = Registry(
        config.limits.max_connections, config.limits.max_connections_per_user, metrics
    )
    app[keys.SOCKETS] = weakref.WeakSet[web.WebSocketResponse]()
    probes: dict[str, Callable[[], Awaitable[None]]] = {
        "upstream": functools.partial(_upstream_reachable, app)
    }
    app[keys.READINESS] = probes
    app.cleanup_ctx.append(_simulator_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_chat_ctx)
    app.cleanup_ctx.append(_watchdog_ctx)
    app.on_shutdown.append(_close_sockets)
    health.setup(app)
    chat.setup(app)
    generations.setup(app)
    conversations.setup(app)
    admin.setup(app)
    pages.setup(app)
    return app
