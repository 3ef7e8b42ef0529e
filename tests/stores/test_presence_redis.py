"""Presence in Redis: per-user caps count every instance, as of its last beat."""

from __future__ import annotations

import asyncio

from gateway import keys
from tests.conftest import make_token
from tests.stores.conftest import started


async def beat(*gateways) -> None:
    """Each instance writes its counts, then each reads the others' (as the heartbeat does)."""
    for _ in range(2):
        for gw in gateways:
            await gw.app[keys.BACKENDS].presence.beat()  # type: ignore[attr-defined]


async def test_the_connection_cap_per_user_counts_both_instances(instances) -> None:
    """max_connections_per_user = 2: one socket on a and one on b; a third on a is refused,
    another user's is not; once b's closes, a takes one again."""
    a, b = await instances("[limits]\nmax_connections_per_user = 2\n")
    token = make_token("alice")
    await a.chat(token=token)
    on_b = await b.chat(token=token)
    await beat(a, b)
    refused = await a.connect(token=token)
    assert await refused.closed() == (1013, "try again later")
    await a.chat(token=make_token("bob"))
    await on_b.ws.close()
    await beat(a, b)
    await a.chat(token=token)


async def test_the_replies_in_flight_cap_per_user_counts_both_instances(instances) -> None:
    """max_replies_per_user = 1: a reply running on a makes a message on b busy; once it has
    ended, b starts one."""
    a, b = await instances("[limits]\nmax_replies_per_user = 1\n")
    token = make_token("alice")
    sock, _, start = await started(a, token, "sim:tokens=400 sim:delay_ms=20 long")
    await beat(a, b)
    other = await b.chat(token=token)
    await other.send(type="message", id="c-2", text="hello sim:tokens=3")
    error = await other.recv_type("error")
    assert error["code"] == "busy" and "too many replies" in error["message"]
    await sock.send(type="cancel", message_id=start["message_id"])
    await sock.recv_type("done")
    await beat(a, b)
    reply = await other.ask("hello again sim:tokens=3", msg_id="c-3")
    assert reply.end["type"] == "done"


async def test_a_heartbeat_beating_flat_out_stops_every_time_its_owner_closes(redis_server) -> None:
    """A presence heartbeat sending commands back to back stops at its owner's aclose, every
    time (on Python 3.11, redis-py's wait_for drops a cancel that lands as a send completes:
    a stopping gateway once beat on for ever and never exited)."""
    from gateway.metrics import Metrics
    from gateway.registry import Registry
    from gateway.stores.presence_redis import RedisPresence
    from gateway.stores.redis_client import KeySpace, make_redis
    from gateway.tasks import TaskOwner
    from tests.conftest import gateway_config

    config = gateway_config(f'[redis]\nurl = "{redis_server.url}"\n')
    client = make_redis(config.redis)
    registry = Registry(10, 10, Metrics())
    presence = RedisPresence(client, KeySpace("t:"), "i~1", registry, heartbeat_s=0.0001)
    try:
        async with asyncio.timeout(30):
            for _ in range(12):
                owner = TaskOwner()
                task = owner.spawn(presence.run(), "presence")
                await presence.beat()  # (the loop beats meanwhile)
                await owner.aclose()
                assert task.done()
    finally:
        await client.aclose()
