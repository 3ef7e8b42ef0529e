"""Every typed application key, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from .auth import AnonymousIds
from .config import Config
from .llm.events import Upstream
from .llm.pool import UpstreamPool
from .metrics import Metrics
from .registry import Registry
from .stores.backends import Backends
from .stores.redis_client import Redis
from .turns import Turns

CONFIG = web.AppKey("config", Config)
INSTANCE_ID = web.AppKey("instance_id", str)
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", Upstream)
UPSTREAM_URL = web.AppKey("upstream_url", str)
# Only when upstream pools are configured (contract section 13): the pool's health, and
# each assistant's pooled upstream.
POOL = web.AppKey("pool", UpstreamPool)
UPSTREAMS = web.AppKey("upstreams", dict[str, Upstream])
TURNS = web.AppKey("turns", Turns)
ANONYMOUS = web.AppKey("anonymous", AnonymousIds)
REDIS = web.AppKey("redis", Redis)  # only when redis.url is set
BACKENDS = web.AppKey("backends", Backends)
REGISTRY = web.AppKey("registry", Registry)
METRICS = web.AppKey("metrics", Metrics)
READINESS = web.AppKey("readiness", dict[str, Callable[[], Awaitable[None]]])
# Every open WebSocket, including those still authenticating: closed with 1001 on shutdown.
# Each handler adds its socket and discards it in a ``finally`` (a plain set: a WeakSet's
# weakref and callback cost more than the rest of a socket's bookkeeping).
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
