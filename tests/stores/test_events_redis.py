"""The Redis bus: an instance's own events come back to it and are dropped unparsed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.stores.events_redis import RedisBus


@pytest.mark.timeout(20)
async def test_an_instance_hears_the_others_events_and_not_its_own(redis_server) -> None:
    """a's own event is dropped before b's, sent after it on the same channel, reaches a."""
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    heard: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    got = {"a": asyncio.Event(), "b": asyncio.Event()}  # an event from a, from b
    buses = {name: RedisBus(client, "test:events", name) for name in ("a", "b")}
    for name, bus in buses.items():

        async def handler(event: dict[str, Any], name: str = name) -> None:
            heard[name].append(event)
            got[event["origin"]].set()

        bus.on("turn", handler)
    tasks = [asyncio.create_task(bus.run()) for bus in buses.values()]
    try:
        for bus in buses.values():
            await bus.wait_ready()
        await buses["a"].publish("turn", text="from a, 世界")
        await buses["b"].publish("turn", text="from b")
        await got["b"].wait()
        assert [e["text"] for e in heard["a"]] == ["from b"]
        assert buses["a"]._from_this_instance(buses["a"].encode("turn", text="x"))
        assert not buses["a"]._from_this_instance(buses["b"].encode("turn", text="x"))
        await got["a"].wait()  # (b hears a's event: there already, or on its way)
        assert [e["text"] for e in heard["b"]] == ["from a, 世界"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
