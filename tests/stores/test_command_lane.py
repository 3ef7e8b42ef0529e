"""The client's command lane: scripts answer as redis-py's do, and the lane survives trouble."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.config import RedisConfig, Secret
from gateway.stores.redis_client import LANE_IDLE_MAX, GatewayRedis, LaneScript, make_redis

# Every kind of answer: a nested array of a string, an integer, a nil and a status.
SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1]), tonumber(ARGV[2]) + 1, false, {redis.status_reply('OK')}}
"""


def _client(url: str, timeout_s: float = 2.0) -> aioredis.Redis:
    return make_redis(RedisConfig(url=Secret(url), command_timeout_s=timeout_s))


async def _connections(url: str) -> int:
    probe = aioredis.from_url(url)
    try:
        return len(await probe.client_list()) - 1  # (the probe's own)
    finally:
        await probe.aclose()


@pytest.mark.timeout(20)
async def test_a_lane_script_answers_exactly_as_a_redis_py_script(redis_server) -> None:
    """Strings, integers, nils and nested arrays decode as redis-py's own scripts give them."""
    client, plain = (
        _client(redis_server.url),
        aioredis.from_url(redis_server.url, decode_responses=True),
    )
    try:
        ours = client.register_script(SCRIPT)
        assert isinstance(client, GatewayRedis) and isinstance(ours, LaneScript)
        theirs = plain.register_script(SCRIPT)
        args = ["世界 🙂", 41]
        assert await ours(keys=["k"], args=args) == await theirs(keys=["k"], args=args)
        assert await ours(keys=["k"], args=["x", 1.5]) == [
            "x",
            2,
            None,
            ["OK"],
        ]  # (Lua: 2.5 as integer)
    finally:
        await client.aclose()
        await plain.aclose()


@pytest.mark.timeout(20)
async def test_a_script_the_server_lost_is_sent_whole_and_runs(redis_server) -> None:
    """After SCRIPT FLUSH (a restart, a failover) the call still runs, by EVAL."""
    client = _client(redis_server.url)
    try:
        script = client.register_script(SCRIPT)
        assert (await script(keys=["k"], args=["a", 1]))[0] == "a"
        await client.script_flush()
        assert (await script(keys=["k"], args=["b", 1]))[0] == "b"
        assert (await script(keys=["k"], args=["c", 1]))[0] == "c"  # loaded again by the EVAL
    finally:
        await client.aclose()


@pytest.mark.timeout(20)
async def test_a_script_error_raises_and_the_lane_goes_on(redis_server) -> None:
    """A Redis error in a script raises ResponseError; the next call works on the same lane."""
    client = _client(redis_server.url)
    try:
        failing = client.register_script("return redis.call('INCR', KEYS[1])")
        await client.set("text", "not a number")
        with pytest.raises(ResponseError, match="not an integer"):
            await failing(keys=["text"])
        assert await failing(keys=["counter"]) == 1
    finally:
        await client.aclose()


@pytest.mark.timeout(20)
async def test_idle_links_the_server_closed_are_replaced_at_the_next_call(redis_server) -> None:
    """Connections killed while idle (a Redis restart, an idle timeout) cost no error."""
    client = _client(redis_server.url)
    killer = aioredis.from_url(redis_server.url)
    try:
        script = client.register_script(SCRIPT)
        await asyncio.gather(*(script(keys=["k"], args=["a", i]) for i in range(4)))
        await killer.client_kill_filter(_type="normal", skipme=True)
        assert (await script(keys=["k"], args=["after", 1]))[0] == "after"
    finally:
        await client.aclose()
        await killer.aclose()


@pytest.mark.timeout(20)
async def test_a_stalled_server_times_out_and_the_lane_recovers(redis_server) -> None:
    """A Redis that stops answering fails the call within the command timeout; once it is
    back the next call works."""
    client = _client(redis_server.url, timeout_s=0.5)
    try:
        script = client.register_script(SCRIPT)
        await script(keys=["k"], args=["a", 1])
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(3):
                with pytest.raises(RedisTimeoutError):
                    await script(keys=["k"], args=["b", 1])
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert (await script(keys=["k"], args=["c", 1]))[0] == "c"
    finally:
        await client.aclose()


@pytest.mark.timeout(20)
async def test_a_burst_keeps_a_bounded_number_of_idle_links_and_close_drops_them(
    redis_server,
) -> None:
    """After a burst of concurrent calls at most LANE_IDLE_MAX links stay; aclose closes them."""
    client = _client(redis_server.url)
    script = client.register_script("redis.call('PING') return 1")
    before = await _connections(redis_server.url)
    await asyncio.gather(*(script() for _ in range(3 * LANE_IDLE_MAX)))
    assert 1 <= await _connections(redis_server.url) - before <= LANE_IDLE_MAX
    await client.aclose()
    for _ in range(100):  # the server notices closed sockets on its own time
        if await _connections(redis_server.url) == before:
            break
        await asyncio.sleep(0.02)
    assert await _connections(redis_server.url) == before
