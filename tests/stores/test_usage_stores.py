"""The usage stores, memory and real Redis, behave the same; Redis adds up across instances."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gateway.config import RedisConfig, Secret
from gateway.stores.redis_client import make_redis
from gateway.stores.usage_memory import MemoryUsageStore
from gateway.stores.usage_redis import RedisUsageStore
from gateway.usage import SpentToday, UsageRecord
from tests.conftest import RedisServer, need_binary

DAY = dt.date(2026, 12, 2)


def rec(
    user="alice",
    assistant="default",
    model="qwen-plus",
    i=10,
    o=20,
    r=None,
    *,
    day=DAY,
    estimated=False,
    address=None,
) -> UsageRecord:
    return UsageRecord(i, o, r, estimated, model, assistant, user, day, address)


@pytest.fixture(params=["memory", "redis"])
async def store(request, tmp_path):
    """Each kind of usage store, 90 days kept."""
    if request.param == "memory":
        yield MemoryUsageStore(90)
        return
    server = RedisServer(need_binary("redis-server"), str(tmp_path))
    await server.start()
    client = make_redis(RedisConfig(url=Secret(server.url)))
    try:
        yield RedisUsageStore(client, "gw:", 90)
    finally:
        await client.aclose()
        await server.stop()


async def test_rows_add_up_replies_and_tokens_by_group(store) -> None:
    """Each group's row sums its replies, token kinds and estimated replies."""
    await store.record(rec())
    await store.record(rec(i=1, o=2, r=3, estimated=True))
    await store.record(rec("bob", "support", "qwen-max", 100, 200))
    await store.record(rec(day=DAY + dt.timedelta(days=1)))
    rows = await store.rows(DAY, DAY, "user")
    assert [r.as_json() for r in rows] == [
        {
            "key": "bob",
            "replies": 1,
            "input_tokens": 100,
            "output_tokens": 200,
            "reasoning_tokens": 0,
            "estimated_replies": 0,
        },
        {
            "key": "alice",
            "replies": 2,
            "input_tokens": 11,
            "output_tokens": 22,
            "reasoning_tokens": 3,
            "estimated_replies": 1,
        },
    ]
    by_day = await store.rows(DAY, DAY + dt.timedelta(days=1), "day")
    assert [(r.key, r.replies) for r in by_day] == [("2026-12-02", 3), ("2026-12-03", 1)]
    assert [r.key for r in await store.rows(DAY, DAY, "model")] == ["qwen-max", "qwen-plus"]
    assert [r.key for r in await store.rows(DAY, DAY, "assistant")] == ["support", "default"]


async def test_rows_for_one_user_hold_only_theirs(store) -> None:
    """A user's query never sees another user's usage."""
    await store.record(rec("alice"))
    await store.record(rec("bob", model="qwen-max"))
    rows = await store.rows(DAY, DAY, "model", user="alice")
    assert [(r.key, r.replies) for r in rows] == [("qwen-plus", 1)]
    assert await store.rows(DAY, DAY, "model", user="carol") == []


async def test_names_with_separators_survive(store) -> None:
    """User ids and names with colons, quotes and non-ASCII are stored and read back intact."""
    await store.record(rec('a:b"c', "助手", "m:1"))
    rows = await store.rows(DAY, DAY, "user")
    assert rows[0].key == 'a:b"c'
    assert (await store.rows(DAY, DAY, "assistant"))[0].key == "助手"
    assert (await store.rows(DAY, DAY, "model"))[0].key == "m:1"


async def test_tokens_today_per_user_assistant_and_address(store) -> None:
    """Today's totals count input, output and reasoning, per user, assistant and address."""
    await store.record(rec("alice", i=10, o=20, r=5, address="203.0.113.7"))
    await store.record(rec("bob", i=1, o=1))
    await store.record(rec("alice", day=DAY - dt.timedelta(days=1)))
    spent = await store.tokens_today(
        today=DAY, user="alice", assistant="default", address="203.0.113.7"
    )
    assert spent == SpentToday(user=35, assistant=37, address=35)
    assert await store.tokens_today(today=DAY, user="carol", assistant="other") == SpentToday()


async def test_memory_forgets_days_past_retention() -> None:
    """A day older than the retention before the newest day is dropped."""
    store = MemoryUsageStore(2)
    await store.record(rec(day=DAY))
    await store.record(rec(day=DAY + dt.timedelta(days=1)))
    await store.record(rec(day=DAY + dt.timedelta(days=2)))
    rows = await store.rows(DAY, DAY + dt.timedelta(days=2), "day")
    assert [r.key for r in rows] == ["2026-12-03", "2026-12-04"]
    await store.record(rec(day=DAY))  # too old to keep
    assert await store.rows(DAY, DAY, "day") == []


async def test_redis_keys_expire_at_the_end_of_the_retention(redis_server) -> None:
    """Both of a day's keys expire at midnight after the day plus usage_retention_days."""
    client = make_redis(RedisConfig(url=Secret(redis_server.url)))
    try:
        store = RedisUsageStore(client, "gw:", 3)
        today = dt.datetime.now(dt.UTC).date()
        await store.record(rec(day=today, address="::1"))
        end = dt.datetime.combine(today + dt.timedelta(days=4), dt.time(), dt.UTC).timestamp()
        for key in (store.day_key(today), store.spent_key(today)):
            expires = await client.expiretime(key)
            assert abs(expires - end) <= 1
    finally:
        await client.aclose()


async def test_two_instances_add_up_exactly(redis_server) -> None:
    """Replies recorded at once through two clients all count (no lost update)."""
    clients = [make_redis(RedisConfig(url=Secret(redis_server.url))) for _ in range(2)]
    try:
        a, b = (RedisUsageStore(c, "gw:", 90) for c in clients)
        await asyncio.gather(*(s.record(rec(i=1, o=2)) for _ in range(100) for s in (a, b)))
        rows = await b.rows(DAY, DAY, "user")
        assert (rows[0].replies, rows[0].input_tokens, rows[0].output_tokens) == (200, 200, 400)
        spent = await a.tokens_today(today=DAY, user="alice", assistant="default")
        assert spent.user == spent.assistant == 600
    finally:
        for c in clients:
            await c.aclose()


async def test_redis_down_is_store_unavailable(redis_server) -> None:
    """With Redis gone, the store raises StoreUnavailable (a 503 / error frame), nothing else."""
    from gateway.errors import StoreUnavailable

    client = make_redis(
        RedisConfig(url=Secret(redis_server.url), command_timeout_s=0.5, connect_timeout_s=0.5)
    )
    try:
        store = RedisUsageStore(client, "gw:", 90)
        await redis_server.stop()
        with pytest.raises(StoreUnavailable):
            await store.record(rec())
        with pytest.raises(StoreUnavailable):
            await store.tokens_today(today=DAY, user="alice", assistant="default")
    finally:
        await client.aclose()
