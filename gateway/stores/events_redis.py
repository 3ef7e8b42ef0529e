"""Cross-instance events on one Redis pub/sub channel.

Events are per turn, never per step (steps travel in reply streams), so one channel
serves every room: each instance applies an event only where it has local viewers.
Pub/sub is at most once: an event published while Redis is down is lost, which costs a
room member on another instance a ``user_message`` frame, never reply text (that is in
the stream, and ``resume`` or the conversation's history gets it back).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from redis.exceptions import RedisError

from ..tasks import Backoff, retry_forever
from .events import EventHandler
from .redis_client import Redis

log = structlog.get_logger("gateway.bus")

RETRY_MAX_S = 2.0


class RedisBus:
    """The bus on one Redis pub/sub channel (see the module's docstring): :meth:`run`
    listens until cancelled and is ``ready`` while subscribed; :meth:`publish` never
    raises (an event published while Redis is down is lost, and logged)."""

    def __init__(self, redis: Redis, channel: str, instance: str) -> None:
        self._redis = redis
        self._channel = channel
        self._instance = instance
        self._handlers: dict[str, EventHandler] = {}
        self._subscribed = asyncio.Event()
        self._backoff = Backoff(max_s=RETRY_MAX_S)
        self._own_prefix = json.dumps({"origin": instance}, ensure_ascii=False)[:-1] + ","

    def on(self, kind: str, handler: EventHandler) -> None:
        self._handlers[kind] = handler

    @property
    def ready(self) -> bool:
        return self._subscribed.is_set()

    async def wait_ready(self) -> None:
        await self._subscribed.wait()

    @property
    def channel(self) -> str:
        return self._channel

    def encode(self, kind: str, **fields: Any) -> str:
        """An event as :meth:`publish` sends it (for a script that publishes it itself)."""
        return json.dumps({"origin": self._instance, "kind": kind, **fields}, ensure_ascii=False)

    async def publish(self, kind: str, **fields: Any) -> None:
        body = self.encode(kind, **fields)
        try:
            await self._redis.publish(self._channel, body)
        except RedisError as exc:
            log.warning("event lost: redis is down", kind=kind, error=type(exc).__name__)

    async def run(self) -> None:
        """Until cancelled: subscribe, dispatch in order, and resubscribe after Redis comes back."""
        await retry_forever(
            self._listen, "event bus", retry_on=(RedisError,), backoff=self._backoff
        )

    async def _listen(self) -> None:
        """One subscription: its events, in order, until Redis goes away."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            self._subscribed.set()
            self._backoff.reset()  # subscribed: the outage, if any, is over
            async for message in pubsub.listen():
                if message.get("type") == "message" and not self._from_this_instance(
                    message["data"]
                ):
                    await self._dispatch(message["data"])
        finally:
            self._subscribed.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        pass  # (the subscription closes when run() is cancelled)

    def _from_this_instance(self, data: str) -> bool:
        """Whether the event is this instance's own, told by its first bytes (:meth:`encode`
        writes the origin first): every turn's event comes back to the instance that
        published it, and is dropped without being parsed. (An event that does not start
        so is parsed and its origin checked, as any other.)"""
        return data.startswith(self._own_prefix)

    async def _dispatch(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("event ignored: not JSON")
            return
        if not isinstance(event, dict) or event.get("origin") == self._instance:
            return
        handler = self._handlers.get(str(event.get("kind")))
        if handler is None:
            return
        try:
            await handler(event)
        except Exception:
            log.exception("event handler failed", kind=event.get("kind"))
