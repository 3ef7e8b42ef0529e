"""The application factory: wiring only, no I/O. Each resource lives in its own cleanup_ctx.

Shutdown runs in this order (aiohttp's): stop listening; ``on_shutdown`` closes every
socket with 1001 ``going away``; the cleanup contexts unwind in reverse: running replies
get ``server.shutdown_grace_s`` to finish into the resume store, then the shared-state
tasks stop (reply publishers first write what they hold), then the Redis client, the
upstream session and the simulator (when it was the upstream) close.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from . import heap, heartbeat, keys
from .auth import AnonymousIds, memory_secret
from .cluster import ClusterEvents
from .config import Config, UpstreamConfig
from .errors import StoreUnavailable
from .handlers import admin, conversations, generations, health, images, pages, usage
from .handlers import socket as socket_handler
from .handlers.errors import json_errors
from .handlers.origins import same_site_writes
from .llm import pool
from .llm.client import make_session, make_upstream
from .llm.events import Upstream
from .llm.script import DEMO_LIMITS
from .llm.simulator import start_simulator
from .metrics import Metrics
from .registry import Registry
from .rooms import Rooms
from .send_policy import SendPolicy
from .stores.backends import memory_backends, redis_backends
from .stores.redis_client import KeySpace, guarded, make_redis
from .supervisor import ReplySupervisor
from .tasks import TaskOwner
from .turns import Turns


async def _simulator_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the built-in Qwen simulator on a loopback port when it is the upstream (the
    offline demo: any visitor's directives are capped, :data:`~.llm.script.DEMO_LIMITS`)."""
    config = app[keys.CONFIG]
    if not config.offline_demo:
        app[keys.UPSTREAM_URL] = config.upstream.base_url
        yield
        return
    runner, url = await start_simulator("127.0.0.1", 0, DEMO_LIMITS)
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
        app[keys.UPSTREAM] = make_upstream(
            config.upstream,
            session,
            app[keys.UPSTREAM_URL],
            thinking_style=config.upstream.thinking_style,
            continuation=config.upstream.continuation,
        )
        if pool.pooled(config):
            _build_pools(app, session)
        yield


def _build_pools(app: web.Application, session: aiohttp.ClientSession) -> None:
    """Section 13: one pool of every upstream, a pooled upstream per assistant; clients
    made once per upstream and retry setting."""
    config = app[keys.CONFIG]
    clients: dict[tuple[str, int], Upstream] = {}

    def client(name: str, settings: UpstreamConfig) -> Upstream:
        made = clients.get((name, settings.max_retries))
        if made is None:
            url = app[keys.UPSTREAM_URL] if name == pool.DEFAULT else settings.base_url
            made = clients[(name, settings.max_retries)] = make_upstream(
                settings, session, url, continuation=config.upstream.continuation
            )
        return made

    upstream_pool = pool.build_pool(config)
    app[keys.POOL] = upstream_pool
    upstreams: dict[str, Upstream] = dict(
        pool.pooled_upstreams(config, upstream_pool, client, app[keys.METRICS])
    )
    app[keys.UPSTREAMS] = upstreams


async def _upstream_reachable(app: web.Application) -> None:
    """Readiness: a TCP connection to the upstream's host opens (no request, no billing)."""
    url = URL(app[keys.UPSTREAM_URL])
    _, writer = await asyncio.open_connection(url.host, url.port)
    writer.close()
    await writer.wait_closed()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis client, when ``redis.url`` is set. No command is sent here: Redis may be
    down at start-up, and the gateway comes up anyway (``/readyz`` says 503 until it is back)."""
    config = app[keys.CONFIG]
    if not config.redis.url:
        yield
        return
    client = make_redis(config.redis)
    app[keys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


def _anonymous_secret(app: web.Application) -> Callable[[], Awaitable[bytes]]:
    """``auth.anonymous_secret``; else, with Redis, one made by the first instance and kept
    there (SET NX), so every instance accepts every other's anonymous credentials."""
    config = app[keys.CONFIG]
    if config.auth.anonymous_secret or not config.redis.url:
        return memory_secret(config.auth)
    name = KeySpace(config.redis.key_prefix).anonymous_secret

    async def load() -> bytes:
        redis = app[keys.REDIS]
        with guarded():
            await redis.set(name, base64.urlsafe_b64encode(os.urandom(32)).decode(), nx=True)
            value = await redis.get(name)
        if not value:  # deleted between the two commands: the next call makes another
            raise StoreUnavailable()
        return str(value).encode()

    return load


async def _backends_ctx(app: web.Application) -> AsyncIterator[None]:
    """Shared state: in memory, or in Redis with its event listener and presence heartbeat."""
    config, registry = app[keys.CONFIG], app[keys.REGISTRY]
    if keys.REDIS in app:
        backends = redis_backends(config, app[keys.REDIS], registry, app[keys.INSTANCE_ID])
        backends.bus.on("broadcast", admin.on_broadcast_event(registry))
    else:
        backends = memory_backends(config, registry)
    app[keys.BACKENDS] = backends
    await backends.run()
    try:
        yield
    finally:
        await backends.aclose()  # publishers first write what they hold


async def _redis_ready(app: web.Application) -> None:
    """Readiness: Redis answers, and this instance hears the other instances' events."""
    await app[keys.REDIS].ping()
    if not app[keys.BACKENDS].bus.ready:
        raise ConnectionError("not subscribed to the event channel yet")


async def _turns_ctx(app: web.Application) -> AsyncIterator[None]:
    """Turns, their reply supervisor and rooms; on the way out, running replies get a grace
    to finish."""
    config, backends, metrics = app[keys.CONFIG], app[keys.BACKENDS], app[keys.METRICS]
    rooms = Rooms()
    supervisor = ReplySupervisor(
        config, app[keys.UPSTREAM], backends, metrics, upstreams=app.get(keys.UPSTREAMS)
    )
    cluster = ClusterEvents(backends.bus, rooms, backends.replies, supervisor)
    app[keys.TURNS] = Turns(
        config, backends, rooms, supervisor, cluster, metrics, app[keys.INSTANCE_ID]
    )
    try:
        yield
    finally:
        await supervisor.drain(config.server.shutdown_grace_s)


async def _watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    """One task enforces every socket's send deadline (cheaper than a timeout per frame),
    and one keeps them alive with pings (cheaper than a heartbeat timer per socket)."""
    config, registry = app[keys.CONFIG], app[keys.REGISTRY]
    heartbeat_s = config.server.heartbeat_s
    policy = SendPolicy.from_limits(config.limits)
    tasks = TaskOwner()
    tasks.spawn(heartbeat.watch_sends(registry, policy), "send watchdog")
    if heartbeat_s > 0:
        tasks.spawn(heartbeat.keep_alive(registry, heartbeat_s), "heartbeat")
    try:
        yield
    finally:
        await tasks.aclose()


async def _heap_ctx(app: web.Application) -> AsyncIterator[None]:
    """One task hands the heap's free pages back to the system (:mod:`gateway.heap`)."""
    trim = heap.heap_trimmer()
    tasks = TaskOwner()
    if trim:
        tasks.spawn(heap.trim_forever(trim), "heap trim")
    try:
        yield
    finally:
        await tasks.aclose()


async def _close_sockets(app: web.Application) -> None:
    await app[keys.REGISTRY].close_all(1001, "going away")
    sockets = app[keys.SOCKETS]  # sockets still authenticating, and generation watches
    for ws in list(sockets):
        await ws.close(code=1001, message=b"going away")


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=config.limits.max_request_bytes, middlewares=[json_errors, same_site_writes]
    )
    app[keys.CONFIG] = config
    app[keys.INSTANCE_ID] = config.server.instance_id or f"{socket.gethostname()}:{os.getpid()}"
    app[keys.METRICS] = metrics = Metrics()
    app[keys.REGISTRY] = Registry(
        config.limits.max_connections, config.limits.max_connections_per_user, metrics
    )
    app[keys.SOCKETS] = set()
    app[keys.ANONYMOUS] = AnonymousIds(_anonymous_secret(app))
    probes: dict[str, Callable[[], Awaitable[None]]] = {
        "upstream": functools.partial(_upstream_reachable, app)
    }
    if config.redis.url:
        probes["redis"] = functools.partial(_redis_ready, app)
    app[keys.READINESS] = probes
    app.cleanup_ctx.append(_simulator_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_backends_ctx)
    app.cleanup_ctx.append(_turns_ctx)
    app.cleanup_ctx.append(_watchdog_ctx)
    app.cleanup_ctx.append(_heap_ctx)
    app.on_shutdown.append(_close_sockets)
    health.setup(app)
    socket_handler.setup(app)
    generations.setup(app)
    conversations.setup(app)
    images.setup(app)
    admin.setup(app)
    usage.setup(app)
    pages.setup(app)
    return app
