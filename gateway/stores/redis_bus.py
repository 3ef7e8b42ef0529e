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

from .interfaces import EventHandler
from .redis_client import Redis

log = structlog.get_logger("gateway.bus")

RETRY_MAX_S = 2.0


class RedisBus:
    def __init__(self, redis: Redis, channel: str, instance: str) -> None:
        self._redis = redis
        self._channel = channel
        self._instance = instance
        self._handlers: dict[str, EventHandler] = {}
        self._subscribed = asyncio.Event()

    def on(self, kind: str, handler: EventHandler) -> None:
        self._handlers[kind] = handler

    @property
    def ready(self) -> bool:
        return self._subscribed.is_set()

    async def wait_ready(self) -> None:
        await self._subscribed.wait()

    async def publish(self, kind: str, **fields: Any) -> None:
        body = json.dumps({"kind": kind, "origin": self._instance, **fields}, ensure_ascii=False)
        try:
            await self._redis.publish(self._channel, body)
        except RedisError as exc:
            log.warning("event lost: redis is down", kind=kind, error=type(exc).__name__)

    async def run(self) -> None:
        """Forever: subscribe, dispatch in order, and resubscribe after Redis comes back."""
        delay = 0.05
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                delay = 0.05
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._dispatch(message["data"])
            except RedisError as exc:
                if self._subscribed.is_set():
                    log.warning("event bus lost redis", error=type(exc).__name__)
                self._subscribed.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                self._subscribed.clear()
                await pubsub.aclose()  # type: ignore[no-untyped-call]

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
