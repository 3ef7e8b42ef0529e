"""Sliding-window counters, memory and real Redis; Redis shared by instances."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import RedisConfig, Secret
from gateway.stores.redis_client import make_redis
from gateway.stores.window_counters_memory import MemoryWindowCounter
from gateway.stores.window_counters_redis import RedisWindowCounter


def test_memory_window_slides() -> None:
    """An event leaves the window exactly window_s after it was counted."""
    now = [0.0]
    counter = MemoryWindowCounter(lambda: now[0])
    assert counter.hit_now("k", 2, 10)
    now[0] = 5
    assert counter.hit_now("k", 2, 10)
    assert not counter.hit_now("k", 2, 10)
    now[0] = 10  # the first event has left
    assert counter.hit_now("k", 2, 10)
    assert not counter.hit_now("k", 2, 10)


def test_memory_sweeps_idle_keys() -> None:
    """Keys whose events have all expired are dropped once the table grows."""
    now = [0.0]
    counter = MemoryWindowCounter(lambda: now[0])
    for i in range(1023):
        counter.hit_now(f"a{i}", 1, 1)
    now[0] = 5
    counter.hit_now("fresh", 1, 1)
    assert len(counter._events) == 1


async def test_redis_instances_share_one_window(redis_server) -> None:
    """Two clients racing for 10 places get exactly 10 between them."""
    clients = [make_redis(RedisConfig(url=Secret(redis_server.url))) for _ in range(2)]
    try:
        a, b = (RedisWindowCounter(c, "gw:") for c in clients)
        results = await asyncio.gather(
            *(counter.hit("ids:203.0.113.7", 10, 3600) for _ in range(15) for counter in (a, b))
        )
        assert sum(results) == 10
        assert await a.hit("ids:198.51.100.1", 10, 3600)
        ttl = await clients[0].pttl(a.key("ids:203.0.113.7"))
        assert 3_500_000 < ttl <= 3_600_000
    finally:
        for c in clients:
            await c.aclose()


async def test_redis_window_slides(redis_server) -> None:
    """Once the window has passed, the key admits again."""
    client = make_redis(RedisConfig(url=Secret(redis_server.url)))
    try:
        counter = RedisWindowCounter(client, "gw:")
        assert await counter.hit("k", 1, 0.2)
        assert not await counter.hit("k", 1, 0.2)
        await asyncio.sleep(0.25)  # the window itself is the thing under test
        assert await counter.hit("k", 1, 0.2)
    finally:
        await client.aclose()


@pytest.mark.timeout(30)
async def test_redis_down_falls_back_to_this_instance(redis_server) -> None:
    """With Redis gone, the limit still holds per instance, and nothing raises."""
    client = make_redis(
        RedisConfig(url=Secret(redis_server.url), command_timeout_s=0.5, connect_timeout_s=0.5)
    )
    try:
        counter = RedisWindowCounter(client, "gw:")
        await redis_server.stop()
        assert [await counter.hit("k", 2, 60) for _ in range(3)] == [True, True, False]
    finally:
        await client.aclose()
