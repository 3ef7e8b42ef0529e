"""Images in Redis, shared by every instance, expiring with their conversation."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from .images import StoredImage
from .redis_client import KeySpace, Redis, guarded


def binary_client(redis: Redis) -> Redis:
    """A client like ``redis`` (same server and options) whose replies are bytes: the
    gateway's client decodes replies as text, which image bytes are not."""
    pool = redis.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": False}
    # from_pool: the client owns its pool, and closing it closes the pool's connections.
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


class RedisImageStore:
    """One hash per image (``P image:{id}``: its conversation, type and bytes) and a set of
    each conversation's image ids (``P conv:{id}:images``); both expire
    ``redis.history_ttl_s`` after the conversation's last turn, as its other keys do
    (:meth:`touch`). Nothing runs in the background."""

    def __init__(self, redis: Redis, keys: KeySpace, ttl_s: float) -> None:
        self._redis = binary_client(redis)
        self._k = keys
        self._ttl = max(1, int(ttl_s))

    async def run(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def put(self, image_id: str, image: StoredImage) -> None:
        k, cid = self._k, image.conversation_id
        with guarded():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(
                    k.image(image_id),
                    mapping={"conv": cid, "type": image.media_type, "data": image.data},
                )
                pipe.expire(k.image(image_id), self._ttl)
                pipe.sadd(k.conv_images(cid), image_id)
                pipe.expire(k.conv_images(cid), self._ttl)
                await pipe.execute()

    async def get(self, image_id: str) -> StoredImage | None:
        return (await self.get_many([image_id])).get(image_id)

    async def get_many(self, image_ids: Iterable[str]) -> dict[str, StoredImage]:
        ids = list(image_ids)
        if not ids:
            return {}
        with guarded():
            async with self._redis.pipeline(transaction=False) as pipe:
                for image_id in ids:
                    pipe.hmget(self._k.image(image_id), ["conv", "type", "data"])
                rows = await pipe.execute()
        found: dict[str, StoredImage] = {}
        for image_id, (conv, media_type, data) in zip(ids, rows, strict=True):
            if conv is not None and media_type is not None and data is not None:
                found[image_id] = StoredImage(conv.decode(), media_type.decode(), data)
        return found

    async def touch(self, conversation_id: str) -> None:
        k = self._k
        with guarded():
            ids = await self._redis.smembers(k.conv_images(conversation_id))
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.expire(k.conv_images(conversation_id), self._ttl)
                for image_id in ids:
                    pipe.expire(k.image(_text(image_id)), self._ttl)
                await pipe.execute()

    async def drop_conversation(self, conversation_id: str) -> None:
        k = self._k
        with guarded():
            ids = await self._redis.smembers(k.conv_images(conversation_id))
            await self._redis.delete(
                k.conv_images(conversation_id), *(k.image(_text(i)) for i in ids)
            )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
