"""The Redis client, the key layout, and the one place Redis errors become ours.

Keys (``P`` is ``redis.key_prefix``; the braces are literal, Redis hash tags)::

    P conv:{id}               hash   owner, session_type, assistant, created_at, updated_at,
                                     title, running, running_instance
    P conv:{id}:members       set    users who may view (the owner; a group's members)
    P conv:{id}:order         list   history message ids, oldest first (capped)
    P conv:{id}:msgs          hash   message id -> JSON
    P conv:{id}:clients       hash   client message id -> reply message id (idempotency)
    P conv:{id}:images        set    ids of the conversation's images
    P image:{id}              hash   conv, type, data (the image's bytes)
    P conv:{id}:uploads       zset   pending uploads (no message named them): id, deadline ms
    P user:{user}:convs       zset   conversation id scored by its last update
    P reply:{mid}             hash   the reply's header (conversation, owner, model, instance)
    P reply:{mid}:steps       stream entry ``0-{seq}`` holds the steps up to seq; then ``end``
    P reply:{mid}:watched     string set while a viewer on another instance follows it
    P reply:{mid}:reaped      string one instance marks a stale reply failed
    P instance:{live}         string alive marker, expires after 3 heartbeats
    P instance:{live}:conns   hash   connection id -> JSON (GET /api/v1/connections)
    P instance:{live}:users   hash   user -> "connections replies" (per-user caps)
    P instance:{live}:nudge   stream wakes this process's reply reader (a new mirror)
    P instances               zset   live id scored by its last heartbeat
    P rate:{user}             hash   token bucket
    P events                  pub/sub channel for every cross-instance event
    P anonymous_secret        string signs anonymous credentials (set once, NX; no expiry)

No two keys collide, whatever the ids: each variable part sits between braces and every
key of a kind ends with ``}`` or ``}:`` and its kind's word, none of which ends another's,
so the key names its kind and its id. (Ids are checked too, :data:`gateway.protocol.ID_RULE`,
and hold no brace; users, a token's ``sub``, may hold anything.) The braces also keep one
conversation's, or one reply's, keys in one Redis Cluster slot.

``{live}`` is the instance id and a token drawn at start-up (``gateway1~5f0c2a9e``): a
process restarted under the same instance id is another one, and its predecessor's replies
and claims are seen dead.

Every conversation key expires ``redis.history_ttl_s`` after its last write; reply keys
``limits.resume_window_s`` after the reply ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import RedisConfig
from ..errors import StoreUnavailable

Redis = aioredis.Redis


def make_redis(config: RedisConfig) -> Redis:
    """A pooled client; connect and command timeouts apart; a short retry on a dropped link.

    With ``redis.sentinels`` the pool asks the Sentinels for the master's address whenever
    it opens a connection, and drops its connections when a write meets a demoted master
    (``READONLY``): a failover is followed without a restart. ``rediss://`` verifies the
    server against ``redis.ca_file`` (else the system's CAs) and presents
    ``redis.cert_file`` when given.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.command_timeout_s,
        "health_check_interval": max(1, int(config.heartbeat_s * 5)),
        "max_connections": config.max_connections,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    url = config.url.reveal()
    if url.startswith("rediss://"):
        options |= _tls_options(config)
    if not config.sentinels:
        client: Redis = aioredis.Redis.from_url(url, **options)
        return client
    parts = parse_url(url)  # scheme, password, database; the host comes from the Sentinels
    options |= {k: v for k, v in parts.items() if k in ("username", "password", "db")}
    options["ssl"] = url.startswith("rediss://")
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.command_timeout_s,
        "decode_responses": True,
    }
    if config.sentinel_password:
        sentinel_options["password"] = config.sentinel_password.reveal()
    if options["ssl"]:  # Sentinels behind the same TLS as the servers they watch
        sentinel_options |= {k: v for k, v in options.items() if k.startswith("ssl")}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        [_address(a) for a in config.sentinels], sentinel_kwargs=sentinel_options, **options
    )
    master = sentinel.master_for(config.sentinel_master, redis_class=SentinelRedis)
    assert isinstance(master, SentinelRedis)
    master.sentinels = sentinel
    return master


class SentinelRedis(aioredis.Redis):
    """A client of the master that Sentinel names; closing it closes the Sentinel clients."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _tls_options(config: RedisConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if config.ca_file:
        options["ssl_ca_certs"] = config.ca_file
    if config.cert_file:
        options["ssl_certfile"] = config.cert_file
        options["ssl_keyfile"] = config.key_file
    return options


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Redis trouble becomes :class:`StoreUnavailable` (an ``error`` frame, a 503, a 1013)."""
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable() from exc


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The key layout above: one method per kind of key."""

    prefix: str

    def conv(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}"

    def members(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:members"

    def order(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:order"

    def msgs(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:msgs"

    def clients(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:clients"

    def conv_images(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:images"

    def conv_uploads(self, cid: str) -> str:
        return f"{self.prefix}conv:{{{cid}}}:uploads"

    def image(self, iid: str) -> str:
        return f"{self.prefix}image:{{{iid}}}"

    def user_convs(self, user: str) -> str:
        return f"{self.user_prefix}{user}}}:convs"

    @property
    def user_prefix(
        self,
    ) -> str:  # a Lua script builds user_convs keys: prefix .. user .. '}:convs'
        return f"{self.prefix}user:{{"

    def reply(self, mid: str) -> str:
        return f"{self.prefix}reply:{{{mid}}}"

    def steps(self, mid: str) -> str:
        return f"{self.prefix}reply:{{{mid}}}:steps"

    def watched(self, mid: str) -> str:
        return f"{self.prefix}reply:{{{mid}}}:watched"

    def reaped(self, mid: str) -> str:
        return f"{self.prefix}reply:{{{mid}}}:reaped"

    def alive(self, instance: str) -> str:
        return f"{self.alive_prefix}{instance}}}"

    @property
    def alive_prefix(self) -> str:  # a Lua script builds alive keys: prefix .. instance .. '}'
        return f"{self.prefix}instance:{{"

    def instance_conns(self, instance: str) -> str:
        return f"{self.prefix}instance:{{{instance}}}:conns"

    def instance_users(self, instance: str) -> str:
        return f"{self.prefix}instance:{{{instance}}}:users"

    def nudge(self, instance: str) -> str:
        return f"{self.prefix}instance:{{{instance}}}:nudge"

    @property
    def instances(self) -> str:
        return f"{self.prefix}instances"

    def rate(self, user: str) -> str:
        return f"{self.prefix}rate:{{{user}}}"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def anonymous_secret(self) -> str:
        return f"{self.prefix}anonymous_secret"
