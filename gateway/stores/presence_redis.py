"""Presence in Redis: each instance's alive marker and its connections, by heartbeat.

Every ``redis.heartbeat_s`` an instance refreshes ``instance:{id}`` (expiring after three
beats) and writes the connections that changed since the last beat into
``instance:{id}:conns``; a connection opening or closing brings the next beat forward
(after :data:`SETTLE_S`, so a burst of connections is one write). ``GET
/api/v1/connections`` reads every instance still alive and forgets one whose marker
expired (a crash, a SIGKILL): its entries go with it.

Per-user caps count every instance: each beat also writes this process's connections and
running replies per user into ``instance:{id}:users`` (the users whose counts changed) and
reads the other instances' into :attr:`Registry.elsewhere` and :meth:`replies_elsewhere`,
so the caps see other instances as of their last beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, cast

import structlog
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from ..registry import Registry
from .redis_client import KeySpace, Redis, guarded
from .replies import ReplyStore

log = structlog.get_logger("gateway.presence")

SETTLE_S = 0.25


class RedisPresence:
    """Presence by heartbeat (see the module's docstring): :meth:`run` beats until
    cancelled, :meth:`aclose` leaves at once (or gives up after three beats);
    :meth:`connections` never waits for a beat for this instance's own connections."""

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        instance: str,
        registry: Registry,
        heartbeat_s: float,
        replies: ReplyStore | None = None,
    ) -> None:
        self._redis = redis
        self._k = keys
        self._instance = instance
        self._registry = registry
        self._beat_s = heartbeat_s
        self._ttl_ms = max(1, int(heartbeat_s * 3000))
        self._written: dict[str, tuple[object, ...]] = {}  # what Redis holds, by signature
        self._replies = replies
        self._usage: dict[str, str] = {}  # user -> "connections replies", as Redis holds it
        self._replies_elsewhere: dict[str, int] = {}
        self._changed = asyncio.Event()
        registry.on_change = self._changed.set

    async def beat(self) -> None:
        """Refresh the alive marker; write only the connections that changed (idle ones cost a
        comparison), and remove the ones that left."""
        now: dict[str, tuple[object, ...]] = {}
        changed: dict[FieldT, EncodableT] = {}
        per_user: dict[str, int] = {}
        for conn in self._registry:
            per_user[conn.user] = per_user.get(conn.user, 0) + 1
            signature = (conn.frames_sent, conn.last_active, conn.user, conn.admin)
            now[conn.connection_id] = signature
            if self._written.get(conn.connection_id) != signature:
                changed[conn.connection_id] = json.dumps(conn.info())
        gone = [cid for cid in self._written if cid not in now]
        conns = self._k.instance_conns(self._instance)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._k.alive(self._instance), str(time.time()), px=self._ttl_ms, get=True)
        pipe.zadd(self._k.instances, {self._instance: time.time()})
        if changed:
            pipe.hset(conns, mapping=changed)
        if gone:
            pipe.hdel(conns, *gone)
        pipe.pexpire(conns, self._ttl_ms)
        usage = self._count(per_user)
        users = self._k.instance_users(self._instance)
        if changed_usage := {u: c for u, c in usage.items() if self._usage.get(u) != c}:
            pipe.hset(users, mapping=cast(dict[FieldT, EncodableT], changed_usage))
        if gone_users := [u for u in self._usage if u not in usage]:
            pipe.hdel(users, *gone_users)
        pipe.pexpire(users, self._ttl_ms)
        pipe.zrange(self._k.instances, 0, -1)
        answers = await pipe.execute()
        self._usage = usage
        await self._read_elsewhere(cast(list[str], answers[-1]))
        # Marker gone (Redis restarted empty, or this process stalled past three beats): the
        # connections' hash may be gone too, so write them all at the next beat.
        self._written = now if answers[0] is not None else {}
        if answers[0] is None:
            self._changed.set()

    def _count(self, connections: dict[str, int]) -> dict[str, str]:
        """This process's connections and running replies per user: "connections replies"."""
        replies: dict[str, int] = {}
        for reply in self._replies.running() if self._replies is not None else ():
            if not reply.remote:
                replies[reply.owner] = replies.get(reply.owner, 0) + 1
        return {
            user: f"{connections.get(user, 0)} {replies.get(user, 0)}"
            for user in connections.keys() | replies.keys()
        }

    async def _read_elsewhere(self, members: list[str]) -> None:
        """The other instances' counts per user (as of their last beat), summed."""
        others = [i for i in members if i != self._instance]
        pipe = self._redis.pipeline(transaction=False)
        for other in others:
            pipe.hgetall(self._k.instance_users(other))
        connections: dict[str, int] = {}
        replies: dict[str, int] = {}
        for usage in await pipe.execute() if others else ():
            for user, counts in cast(dict[str, str], usage).items():
                conns, _, running = counts.partition(" ")
                connections[user] = connections.get(user, 0) + int(conns)
                replies[user] = replies.get(user, 0) + int(running or 0)
        self._registry.elsewhere = connections
        self._replies_elsewhere = replies

    def replies_elsewhere(self, user: str) -> int:
        """The user's replies running on other instances, as of their last beat."""
        return self._replies_elsewhere.get(user, 0)

    async def run(self) -> None:
        """Forever: beat; after Redis comes back (maybe empty), write everything again."""
        while True:
            self._changed.clear()
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("presence waits for redis", error=type(exc).__name__)
                self._written, self._usage = {}, {}
            # (asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a cancellation.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._beat_s):
                    await self._changed.wait()
                await asyncio.sleep(SETTLE_S)

    async def leave(self) -> None:
        """A clean shutdown: disappear at once rather than after three beats. Given up after
        three beats (Redis not answering): by then this instance's keys have expired anyway."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(
            self._k.alive(self._instance),
            self._k.instance_conns(self._instance),
            self._k.instance_users(self._instance),
        )
        pipe.zrem(self._k.instances, self._instance)
        with contextlib.suppress(RedisError, TimeoutError):
            async with asyncio.timeout(self._ttl_ms / 1000):
                await pipe.execute()

    async def connections(self) -> list[dict[str, Any]]:
        found = self._registry.snapshot()  # this instance: live, not as of the last beat
        with guarded():
            members = cast(list[str], await self._redis.zrange(self._k.instances, 0, -1))
            others = [i for i in members if i != self._instance]
            if not others:
                return found
            pipe = self._redis.pipeline(transaction=False)
            for other in others:
                pipe.exists(self._k.alive(other))
                pipe.hvals(self._k.instance_conns(other))
            answers = await pipe.execute()
            dead = []
            for i, other in enumerate(others):
                if answers[2 * i]:
                    found.extend(json.loads(body) for body in answers[2 * i + 1])
                else:
                    dead.append(other)
            if dead:
                await self._redis.zrem(self._k.instances, *dead)
                await self._redis.delete(*(self._k.instance_conns(d) for d in dead))
        return found

    async def aclose(self) -> None:
        await self.leave()
