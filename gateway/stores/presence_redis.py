"""Presence in Redis: each instance's alive marker and its connections, by heartbeat.

Every ``redis.heartbeat_s`` an instance refreshes ``instance:{id}`` (expiring after three
beats) and writes the connections that changed since the last beat into
``instance:{id}:conns``; a connection opening or closing brings the next beat forward
(after :data:`SETTLE_S`, so a burst of connections is one write). ``GET
/api/v1/connections`` reads every instance still alive and forgets one whose marker
expired (a crash, a SIGKILL): its entries go with it.
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

log = structlog.get_logger("gateway.presence")

SETTLE_S = 0.25


class RedisPresence:
    """Presence by heartbeat (see the module's docstring): :meth:`run` beats until
    cancelled, :meth:`aclose` leaves at once; :meth:`connections` never waits for a beat
    for this instance's own connections."""

    def __init__(
        self, redis: Redis, keys: KeySpace, instance: str, registry: Registry, heartbeat_s: float
    ) -> None:
        self._redis = redis
        self._k = keys
        self._instance = instance
        self._registry = registry
        self._beat_s = heartbeat_s
        self._ttl_ms = max(1, int(heartbeat_s * 3000))
        self._written: dict[str, tuple[object, ...]] = {}  # what Redis holds, by signature
        self._changed = asyncio.Event()
        registry.on_change = self._changed.set

    async def beat(self) -> None:
        """Refresh the alive marker; write only the connections that changed (idle ones cost a
        comparison), and remove the ones that left."""
        now: dict[str, tuple[object, ...]] = {}
        changed: dict[FieldT, EncodableT] = {}
        for conn in self._registry:
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
        answers = await pipe.execute()
        # Marker gone (Redis restarted empty, or this process stalled past three beats): the
        # connections' hash may be gone too, so write them all at the next beat.
        self._written = now if answers[0] is not None else {}
        if answers[0] is None:
            self._changed.set()

    async def run(self) -> None:
        """Forever: beat; after Redis comes back (maybe empty), write everything again."""
        while True:
            self._changed.clear()
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("presence waits for redis", error=type(exc).__name__)
                self._written = {}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._beat_s)
                await asyncio.sleep(SETTLE_S)

    async def leave(self) -> None:
        """A clean shutdown: disappear at once rather than after three beats."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._k.alive(self._instance), self._k.instance_conns(self._instance))
        pipe.zrem(self._k.instances, self._instance)
        with contextlib.suppress(RedisError):
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
