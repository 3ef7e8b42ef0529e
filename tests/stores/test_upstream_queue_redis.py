"""The upstream concurrency cap across instances: one fair line in a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import RedisConfig, Secret
from gateway.errors import UpstreamThrottled
from gateway.stores.redis_client import make_redis
from gateway.stores.upstream_queue_redis import RedisSlot, RedisUpstreamQueue
from gateway.upstream_queue import MemorySlot


class Positions:
    """Collects the positions a waiter is told; a test may await the next one."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, position: int) -> None:
        self.seen.append(position)
        self.changed.set()


@pytest.fixture
async def instances(redis_server):
    """``make(n, max_concurrent, timeout, **kw)``: n queues on one Redis, own clients."""
    clients = []

    def make(n: int, max_concurrent: int, timeout: float = 10, **kw):
        out = []
        for _ in range(n):
            client = make_redis(
                RedisConfig(url=Secret(redis_server.url), command_timeout_s=1, connect_timeout_s=1)
            )
            clients.append(client)
            out.append(RedisUpstreamQueue(client, "gw:", max_concurrent, timeout, **kw))
        return out

    yield make
    for client in clients:
        await client.aclose()


async def in_line(queue: RedisUpstreamQueue) -> tuple[asyncio.Task, Positions]:
    positions = Positions()
    task = asyncio.create_task(queue.acquire(positions))
    await positions.changed.wait()
    positions.changed.clear()
    return task, positions


async def test_the_cap_holds_across_instances(instances) -> None:
    """Two places in all: a third turn, on the other instance, waits until one is freed."""
    a, b = instances(2, 2)
    one, two = await a.acquire(), await b.acquire()
    assert isinstance(one, RedisSlot)
    waiter, positions = await in_line(b)
    assert positions.seen == [1] and not waiter.done()
    await one.release()
    third = await waiter
    assert isinstance(third, RedisSlot)
    for slot in (two, third):
        await slot.release()
    redis = a._redis
    assert await redis.zcard(a.keys[0]) == 0 and await redis.zcard(a.keys[1]) == 0


async def test_waiters_on_different_instances_are_served_first_come_first_served(
    instances,
) -> None:
    """One place; waiters from a, b, a, b in that order get it in that order."""
    a, b = instances(2, 1)
    holder = await a.acquire()
    line = [await in_line(q) for q in (b, a, b, a)]
    assert [p.seen for _, p in line] == [[1], [2], [3], [4]]
    order = []
    current = holder
    for index, (task, _) in enumerate(line):
        await current.release()
        current = await task
        order.append(index)
        assert all(not t.done() for t, _ in line[index + 1 :])
    await current.release()
    assert order == [0, 1, 2, 3]
    last = line[3][1].seen  # polled: a place may be skipped between two polls
    assert last[0] == 4 and last[-1] == 1 and last == sorted(last, reverse=True)


async def test_the_wait_runs_out_and_leaves_the_line(instances) -> None:
    """queue_timeout_s in line: upstream_throttled, and the line no longer holds the turn."""
    [a] = instances(1, 1, timeout=0.3)
    holder = await a.acquire()
    with pytest.raises(UpstreamThrottled):
        await a.acquire()
    assert await a._redis.zcard(a.keys[1]) == 0
    await holder.release()


async def test_a_cancelled_waiter_leaves_the_line(instances) -> None:
    """A waiter cancelled in line is gone from Redis; the one behind moves up."""
    a, b = instances(2, 1)
    holder = await a.acquire()
    first, _ = await in_line(a)
    second, positions = await in_line(b)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await positions.changed.wait()
    assert positions.seen == [2, 1]
    await holder.release()
    await (await second).release()


async def test_a_dead_instances_place_comes_back_after_its_lease(instances) -> None:
    """A holder that stops refreshing (its instance died) loses the place after lease_s."""
    a, b = instances(2, 1, lease_s=0.5)
    dead = await a.acquire()
    assert isinstance(dead, RedisSlot)
    dead._refresher.cancel()  # the instance is gone: nobody refreshes or releases
    slot = await asyncio.wait_for(b.acquire(), 5)
    assert isinstance(slot, RedisSlot)
    await slot.release()


async def test_a_held_place_outlives_its_lease_while_refreshed(instances) -> None:
    """A live holder keeps its place past lease_s; nobody else gets it meanwhile."""
    a, b = instances(2, 1, lease_s=0.3, timeout=0.8)
    slot = await a.acquire()
    with pytest.raises(UpstreamThrottled):
        await b.acquire()
    await slot.release()


async def test_a_dead_waiter_stops_blocking_the_line(instances) -> None:
    """A waiter that stopped polling (its instance died) is dropped after stale_s."""
    a, b = instances(2, 1, stale_s=0.3)
    holder = await a.acquire()
    seconds, micros = await a._redis.time()
    await a._redis.zadd(a.keys[1], {"ghost": 0})  # first in line, polled just now, never again
    await a._redis.zadd(a.keys[2], {"ghost": seconds + micros / 1e6})
    waiter, positions = await in_line(b)
    assert positions.seen == [2]
    await holder.release()
    slot = await asyncio.wait_for(waiter, 5)
    assert positions.seen == [2, 1]
    assert await a._redis.zscore(a.keys[1], "ghost") is None
    await slot.release()


async def test_no_cap_touches_nothing(instances) -> None:
    """max_concurrent 0: no Redis round trip, no key."""
    [a] = instances(1, 0)
    slot = await a.acquire()
    assert isinstance(slot, MemorySlot)
    assert await a._redis.exists(*a.keys) == 0


@pytest.mark.timeout(30)
async def test_redis_down_caps_this_instance_alone(instances, redis_server) -> None:
    """With Redis gone the queue still answers, capping this instance by itself."""
    [a] = instances(1, 1, timeout=0.3)
    await redis_server.stop()
    slot = await a.acquire()
    assert isinstance(slot, MemorySlot)
    with pytest.raises(UpstreamThrottled):
        await a.acquire()
    await slot.release()


async def test_many_turns_on_two_instances_never_exceed_the_cap(instances) -> None:
    """Thirty turns spread over two instances through three places: at most three at once."""
    a, b = instances(2, 3, poll_s=0.02)
    running = peak = done = 0

    async def turn(queue: RedisUpstreamQueue) -> None:
        nonlocal running, peak, done
        async with await queue.acquire():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)  # a reply takes a moment upstream
            running -= 1
        done += 1

    await asyncio.gather(*(turn(q) for _ in range(15) for q in (a, b)))
    assert (peak, done) == (3, 30)
    assert await a._redis.zcard(a.keys[0]) == 0 and await a._redis.zcard(a.keys[1]) == 0
