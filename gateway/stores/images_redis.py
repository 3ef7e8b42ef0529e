"""Images in Redis, shared by every instance, expiring with their conversation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis

from .images import StoredImage, UploadSlot
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


# KEYS: the conversation's pending uploads (a sorted set: image id, deadline in ms).
# ARGV: image id, the most pending, the TTL in ms. Redis's clock, so instances agree.
# Returns {1, deadline ms} when the slot is taken, {0, ms until the oldest expires} if not.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) - now}
end
local deadline = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, deadline}
"""


class RedisImageStore:
    """One hash per image (``P image:{id}``: its conversation, type and bytes) and a set of
    each conversation's image ids (``P conv:{id}:images``); both expire
    ``redis.history_ttl_s`` after the conversation's last turn, as its other keys do
    (:meth:`touch`). Nothing runs in the background.

    A pending upload is in ``P conv:{id}:uploads`` (a sorted set scored by its deadline, in
    Redis's clock; trimmed and counted by one script per upload), not in the conversation's
    set, and its hash expires at that deadline; :meth:`adopt` moves it to the conversation's
    set and its TTL to the conversation's."""

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        ttl_s: float,
        max_pending: int = 8,
        pending_ttl_s: float = 600.0,
    ) -> None:
        self._redis = binary_client(redis)
        self._k = keys
        self._ttl = max(1, int(ttl_s))
        self._max_pending = max_pending
        self._pending_ttl_ms = max(1, int(pending_ttl_s * 1000))
        self._reserve = self._redis.register_script(_RESERVE)

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
            pending = await self._redis.zrange(k.conv_uploads(conversation_id), 0, -1)
            await self._redis.delete(
                k.conv_images(conversation_id),
                k.conv_uploads(conversation_id),
                *(k.image(_text(i)) for i in [*ids, *pending]),
            )

    async def reserve_upload(self, conversation_id: str, image_id: str) -> UploadSlot:
        with guarded():
            granted, ms = await self._reserve(
                keys=[self._k.conv_uploads(conversation_id)],
                args=[image_id, self._max_pending, self._pending_ttl_ms],
            )
        if not granted:
            return UploadSlot(False, max(1, -(-int(ms) // 1000)))
        return UploadSlot(True)

    async def put_upload(self, image_id: str, image: StoredImage) -> None:
        k, cid = self._k, image.conversation_id
        with guarded():
            deadline = await self._redis.zscore(k.conv_uploads(cid), image_id)
            if deadline is None:  # (expired, or the conversation dropped, meanwhile)
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(
                    k.image(image_id),
                    mapping={"conv": cid, "type": image.media_type, "data": image.data},
                )
                pipe.pexpireat(k.image(image_id), int(deadline))
                await pipe.execute()

    async def release_upload(self, conversation_id: str, image_id: str) -> None:
        with guarded():
            await self._redis.zrem(self._k.conv_uploads(conversation_id), image_id)

    async def adopt(self, images: Mapping[str, StoredImage]) -> None:
        k, ids = self._k, list(images)
        if not ids:
            return
        with guarded():
            async with self._redis.pipeline(transaction=False) as pipe:
                for image_id, image in images.items():
                    cid = image.conversation_id
                    pipe.expire(k.image(image_id), self._ttl)
                    pipe.zrem(k.conv_uploads(cid), image_id)
                    pipe.sadd(k.conv_images(cid), image_id)
                    pipe.expire(k.conv_images(cid), self._ttl)
                results = await pipe.execute()
        for n, (image_id, image) in enumerate(images.items()):
            if not results[4 * n]:  # (expired between its lookup and now: kept again)
                await self.put(image_id, image)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
