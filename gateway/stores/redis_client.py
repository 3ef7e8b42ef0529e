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

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import RedisConfig
from ..errors import StoreUnavailable

Redis = aioredis.Redis

# A lane tries an exchange this many times when the link breaks (as the pool's own retry).
LANE_TRIES = 3


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
        client: Redis = GatewayRedis.from_url(url, **options)
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


class GatewayRedis(aioredis.Redis):
    """redis-py's client, whose registered scripts run through a :class:`CommandLane` of its
    own (:class:`LaneScript`) instead of its command layer; closing it closes the lane."""

    _lane: CommandLane | None = None

    def register_script(self, script: Any) -> Any:
        if self._lane is None:
            self._lane = CommandLane(self.connection_pool)
        return LaneScript(self._lane, script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._lane is not None:
            await self._lane.aclose()
        await super().aclose(close_connection_pool)


class SentinelRedis(GatewayRedis):
    """A client of the master that Sentinel names; closing it closes the Sentinel clients."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


def bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode_arg(value: object) -> bytes:
    """A command's argument as redis-py's encoder writes it (bytes, str, int, float)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise DataError(f"Invalid input of type: '{type(value).__name__}'")


def pack_command(*parts: object) -> bytes:
    """One command in RESP, its arguments encoded as by :func:`encode_arg`."""
    return b"*%d\r\n" % len(parts) + b"".join([bulk(encode_arg(part)) for part in parts])


async def exchange_on(
    conn: AbstractConnection, packed: bytes, count: int, timeout_s: float | None, *, decode: bool
) -> list[object]:
    """Send ``count`` packed commands on ``conn`` in one write and read their answers under
    one timeout, Redis errors as values. Any other failure disconnects ``conn`` (an answer
    may be left unread: it is never reused as is) and raises; a timeout as
    :class:`redis.exceptions.TimeoutError`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await exchange_untimed(conn, packed, count, decode=decode)
    except TimeoutError:
        raise RedisTimeoutError("redis did not answer in time") from None


async def exchange_untimed(
    conn: AbstractConnection, packed: bytes, count: int, *, decode: bool
) -> list[object]:
    """:func:`exchange_on` without a timeout of its own, for a caller that keeps one (the
    publisher's :class:`~gateway.deadline.StandingDeadline`)."""
    try:
        if not conn.is_connected:  # (connect(): a Sentinel-managed one asks for the master)
            await conn.connect()  # type: ignore[no-untyped-call]
        await conn.send_packed_command(packed, check_health=False)
        answers: list[object] = []
        for _ in range(count):
            try:
                answers.append(await conn.read_response(disable_decoding=not decode))
            except ResponseError as exc:
                answers.append(exc)
    except BaseException:
        await conn.disconnect()
        raise
    return answers


class CommandLane:
    """Connections of its own for packed commands, apart from redis-py's pool checkout and
    per-command layers (the stores' scripts: several a turn).

    Contract: :meth:`exchange` takes an idle connection, opens one with the pool's own
    factory (so TLS, credentials and Sentinel hold as for any connection) while fewer than
    the pool's ``max_connections`` are open, or waits its turn for one (first come, first
    served, where the pool would refuse with "Too many connections"); it sends,
    reads every answer under the pool's command timeout, and gives the connection back,
    broken or not (a broken one is reconnected at its next use). Redis errors come back as
    values. After a broken link the idle connections are disconnected too (they most likely
    broke together) and the exchange is tried again, :data:`LANE_TRIES` times in all, as the
    pool's retry does; a timeout is not tried again (the command may have run). As the
    pool, it keeps what a burst opened: the next burst opens none. :meth:`aclose`
    disconnects the idle ones.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._timeout_s: float | None = pool.connection_kwargs.get("socket_timeout")
        self._size = max(1, pool.max_connections)  # redis.max_connections, as the pool's
        self._opened = 0
        self._idle: list[AbstractConnection] = []
        self._waiters: collections.deque[asyncio.Future[AbstractConnection]] = collections.deque()

    @property
    def timeout_s(self) -> float | None:
        """The pool's command timeout, which every exchange keeps (None: none)."""
        return self._timeout_s

    def open_connection(self) -> AbstractConnection:
        """A new connection of the pool's kind, timed by its exchanges, not per read."""
        conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        conn.socket_timeout = None
        return conn

    async def exchange(self, packed: bytes, count: int, *, decode: bool = True) -> list[object]:
        """The answers of ``count`` packed commands sent in one write (see the class)."""
        for attempt in range(LANE_TRIES):
            conn = await self._take()
            try:
                return await exchange_on(conn, packed, count, self._timeout_s, decode=decode)
            except (RedisConnectionError, OSError):
                if attempt + 1 == LANE_TRIES:
                    raise
                await self._disconnect_idle()
            finally:
                self._give_back(conn)
            if attempt:  # at once on a new link; then back off, as the pool's retry
                await asyncio.sleep(min(0.5, 0.05 * 2**attempt))
        raise AssertionError("unreachable")  # (the last try raises or returns)

    async def _take(self) -> AbstractConnection:
        if self._idle:
            return self._idle.pop()
        if self._opened < self._size:
            self._opened += 1
            return self.open_connection()
        waiter: asyncio.Future[AbstractConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())  # handed over as the wait was cancelled
            raise

    def _give_back(self, conn: AbstractConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def _disconnect_idle(self) -> None:
        for conn in self._idle:
            await conn.disconnect()

    async def aclose(self) -> None:
        await self._disconnect_idle()


class LaneScript:
    """A Lua script called as redis-py's registered scripts are, ``await script(keys=...,
    args=...)`` for its decoded answer, through a :class:`CommandLane`: ``EVALSHA`` packed
    in one format, and ``EVAL`` when the server lacks the script (restarted, failed over),
    which also loads it. A Redis error raises as redis-py's does."""

    def __init__(self, lane: CommandLane, script: str | bytes) -> None:
        text = script.encode() if isinstance(script, str) else script
        self._lane = lane
        self._evalsha = bulk(b"EVALSHA") + bulk(
            hashlib.sha1(text, usedforsecurity=False).hexdigest().encode()
        )
        self._eval = bulk(b"EVAL") + bulk(text)

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        parts = [encode_arg(part) for part in (len(keys), *keys, *args)]
        head = b"*%d\r\n" % (2 + len(parts))
        tail = b"".join([bulk(part) for part in parts])
        (answer,) = await self._lane.exchange(head + self._evalsha + tail, 1)
        if isinstance(answer, NoScriptError):
            (answer,) = await self._lane.exchange(head + self._eval + tail, 1)
        if isinstance(answer, ResponseError):
            raise answer
        return answer


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
