"""The client's command lane: scripts answer as redis-py's do, and the lane survives trouble."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.config import RedisConfig, Secret
from gateway.stores.redis_client import GatewayRedis, LaneScript, make_redis, pack_command

LANE_SIZE = 8  # redis.max_connections in these tests

# Every kind of answer: a nested array of a string, an integer, a nil and a status.
SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
return {redis.call('GET', KEYS[1]), tonumber(ARGV[2]) + 1, false, {redis.status_reply('OK')}}
"""


def _client(url: str, timeout_s: float = 2.0) -> aioredis.Redis:
    config = RedisConfig(url=Secret(url), command_timeout_s=timeout_s, max_connections=LANE_SIZE)
    return make_redis(config)


async def _client_ids(url: str) -> set[str]:
    """The ids of the server's clients, but the probe's own."""
    probe = aioredis.from_url(url)
    try:
        own = await probe.client_id()
        return {str(c["id"]) for c in await probe.client_list() if int(c["id"]) != own}
    finally:
        await probe.aclose()


async def _connections(url: str) -> int:
    return len(await _client_ids(url))


@pytest.mark.timeout(20)
def test_a_packed_command_is_byte_for_byte_what_redis_py_sends() -> None:
    """pack_command writes bytes, text and integers exactly as redis-py's packer does."""
    for parts in [(b"XADD", "gw:nudge:{é}", b"MAXLEN", 8, b"*", b"n", 1), ("PEXPIRE", "k", 60_000)]:
        assert pack_command(*parts) == b"".join(Connection().pack_command(*parts))


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
async def test_a_burst_opens_at_most_the_lane_size_and_keeps_them(redis_server) -> None:
    """Calls beyond redis.max_connections wait their turn: a burst opens at most that many
    links, a second burst opens none, every call answers, and aclose closes them."""
    client = _client(redis_server.url)
    script = client.register_script("return ARGV[1]")
    before = await _connections(redis_server.url)
    first = await asyncio.gather(*(script(args=[i]) for i in range(3 * LANE_SIZE)))
    assert first == [str(i) for i in range(3 * LANE_SIZE)]
    opened = await _connections(redis_server.url) - before
    assert opened == LANE_SIZE
    ids = await _client_ids(redis_server.url)
    await asyncio.gather(*(script(args=[i]) for i in range(3 * LANE_SIZE)))
    assert await _client_ids(redis_server.url) == ids
    await client.aclose()
    for _ in range(100):  # the server notices closed sockets on its own time
        if await _connections(redis_server.url) == before:
            break
        await asyncio.sleep(0.02)
    assert await _connections(redis_server.url) == before


@pytest.mark.timeout(20)
async def test_a_call_cancelled_while_waiting_its_turn_loses_no_link(redis_server) -> None:
    """A caller cancelled while it waits for a link leaves the lane whole: later calls run."""
    client = _client(redis_server.url)
    script = client.register_script("return ARGV[1]")
    calls = [asyncio.create_task(script(args=[i])) for i in range(2 * LANE_SIZE)]
    await asyncio.sleep(0)  # every call has started: half of them wait for a link
    for call in calls[LANE_SIZE:]:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert await asyncio.gather(*(script(args=[i]) for i in range(LANE_SIZE))) == [
        str(i) for i in range(LANE_SIZE)
    ]
    await client.aclose()
