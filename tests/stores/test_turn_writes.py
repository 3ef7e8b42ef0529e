"""The turn-writes seam, memory and real Redis: a turn's admission, start and settle do what
the seams do one call at a time, in one step each."""

from __future__ import annotations

import json
import time

import pytest

from gateway.conversations import Conversation, HistoryMessage
from gateway.metrics import Metrics
from gateway.quotas import QuotaLimits
from gateway.registry import Registry
from gateway.replies import ReplyLog
from gateway.stores.backends import Backends, memory_backends, redis_backends
from gateway.stores.redis_client import make_redis
from gateway.stores.turn_writes import TurnAsk
from gateway.usage import SpentToday, UsageRecord, utc_day
from tests.conftest import RedisServer, gateway_config, need_binary

TODAY = utc_day(time.time())  # (Redis expires a day's usage after the retention)
NO_QUOTA = QuotaLimits()


def ask(
    user: str = "alice",
    *,
    address: str | None = None,
    per_address: int = 0,
    quotas: QuotaLimits = NO_QUOTA,
) -> TurnAsk:
    return TurnAsk(user, address, per_address, "default", quotas, TODAY)


def record(tokens: int, user: str = "alice") -> UsageRecord:
    return UsageRecord(tokens, 0, None, False, "qwen-plus", "default", user, TODAY, None)


@pytest.fixture(params=["memory", "redis"])
async def make_backends(request, tmp_path):
    """``make_backends(toml)``: each kind of backends (Redis on a fresh redis-server)."""
    clients, made = [], []
    server = None
    if request.param == "redis":
        server = RedisServer(need_binary("redis-server"), str(tmp_path))
        await server.start()

    async def make(toml: str = "") -> Backends:
        registry = Registry(1000, 1000, Metrics())
        if server is None:
            return memory_backends(gateway_config(toml), registry)
        config = gateway_config(toml + f'\n[redis]\nurl = "{server.url}"\n')
        client = make_redis(config.redis)
        clients.append(client)
        backends = redis_backends(config, client, registry, "a")
        made.append(backends)
        await backends.presence.beat()  # type: ignore[attr-defined]
        return backends

    try:
        yield make
    finally:
        for backends in made:
            await backends.replies.aclose()  # (its publisher)
        for client in clients:
            await client.aclose()
        if server is not None:
            await server.stop()


async def conversation(backends: Backends, cid: str = "conv-1") -> Conversation:
    return await backends.conversations.create(cid, "alice", "person", "default")


async def test_the_rate_limit_refuses_before_the_claim(make_backends) -> None:
    """With 2 messages a minute, the third turn is rate_limited and claims nothing."""
    backends = await make_backends("[limits]\nmessages_per_minute = 2\n")
    writes, conv = backends.turn_writes, await conversation(backends)
    outcomes = []
    for n in range(3):
        admission = await writes.admit_and_claim(
            conv, ask(), f"m-{n}", f"c-{n}", "a", interrupt=False
        )
        outcomes.append(admission.outcome)
        if admission.claim is not None:
            await backends.conversations.end_reply(conv, f"m-{n}")
    assert outcomes == ["claimed", "claimed", "rate_limited"]
    fresh = await backends.conversations.get(conv.id)
    assert fresh is not None and fresh.running is None and "c-2" not in fresh.replies_by_client_id


async def test_the_address_limit_refuses_after_the_rate_limit_counted(make_backends) -> None:
    """An anonymous address's 1 a minute refuses the second turn, which the rate limit (3 a
    minute) counted: the fourth is rate_limited."""
    backends = await make_backends("[limits]\nmessages_per_minute = 3\n")
    writes, conv = backends.turn_writes, await conversation(backends)
    anonymous = ask(address="203.0.113.7", per_address=1)
    outcomes = []
    for n in range(4):
        admission = await writes.admit_and_claim(
            conv, anonymous, f"m-{n}", f"c-{n}", "a", interrupt=False
        )
        outcomes.append(admission.outcome)
    assert outcomes == ["claimed", "address_limited", "address_limited", "rate_limited"]
    other = await writes.admit_and_claim(conv, ask("bob"), "m-9", "c-9", "a", interrupt=False)
    assert other.outcome == "claimed"  # (busy: its claim's outcome, from the store)


async def test_a_spent_quota_refuses_with_what_was_spent(make_backends) -> None:
    """40 tokens spent today: a quota of 40 refuses (with the spend), one of 100 claims."""
    backends = await make_backends()
    writes, conv = backends.turn_writes, await conversation(backends)
    await backends.usage.record(record(40))
    refused = await writes.admit_and_claim(
        conv, ask(quotas=QuotaLimits(per_user=40)), "m-1", "c-1", "a", interrupt=False
    )
    assert (refused.outcome, refused.spent, refused.claim) == (
        "over_quota",
        SpentToday(40, 40),
        None,
    )
    allowed = await writes.admit_and_claim(
        conv, ask(quotas=QuotaLimits(per_assistant=100)), "m-2", "c-2", "a", interrupt=False
    )
    assert allowed.outcome == "claimed" and allowed.spent == SpentToday(40, 40, 0)
    assert allowed.claim is not None and allowed.claim.outcome == "started"
    assert conv.running == "m-2"


async def test_the_claim_answers_busy_and_duplicate_as_the_store_does(make_backends) -> None:
    """A running reply makes another client id busy, and a seen client id a duplicate."""
    backends = await make_backends()
    writes, conv = backends.turn_writes, await conversation(backends)
    first = await writes.admit_and_claim(conv, ask(), "m-1", "c-1", "a", interrupt=False)
    busy = await writes.admit_and_claim(conv, ask(), "m-2", "c-2", "a", interrupt=False)
    again = await writes.admit_and_claim(conv, ask(), "m-3", "c-1", "a", interrupt=False)
    assert [a.claim.outcome for a in (first, busy, again) if a.claim] == [
        "started",
        "busy",
        "duplicate",
    ]
    assert again.claim is not None and again.claim.previous == "m-1"


async def test_start_reply_stores_history_and_header_then_settles_with_usage(make_backends) -> None:
    """History holds the user message and the placeholder, the reply is found; its settle
    stores the final text, frees the claim and counts the usage."""
    backends = await make_backends()
    writes, conv = backends.turn_writes, await conversation(backends)
    await writes.admit_and_claim(conv, ask(), "m-1", "c-1", "a", interrupt=False)
    user = HistoryMessage("u-1", "user", "hello", "complete", 1.0, user="alice", client_id="c-1")
    placeholder = HistoryMessage("m-1", "assistant", "", "running", 1.0)
    reply = ReplyLog(
        message_id="m-1", conversation_id=conv.id, owner="alice", reply_to="c-1", model="m"
    )
    await writes.start_reply(conv, (user, placeholder), reply, '{"type":"user_message"}')
    fresh = await backends.conversations.get(conv.id)
    assert fresh is not None and [(m.id, m.status) for m in fresh.messages] == [
        ("u-1", "complete"),
        ("m-1", "running"),
    ]
    assert fresh.title == "hello" and await backends.replies.find("m-1") is not None
    await writes.settle_and_record(conv, "m-1", ("hi there", "complete", ""), record(7))
    fresh = await backends.conversations.get(conv.id)
    assert fresh is not None and fresh.running is None
    assert (fresh.messages[-1].content, fresh.messages[-1].status) == ("hi there", "complete")
    spent = await backends.usage.tokens_today(today=TODAY, user="alice", assistant="default")
    assert spent == SpentToday(7, 7, 0)


async def test_redis_tells_other_instances_once_history_and_header_are_stored(
    tmp_path,
) -> None:
    """The turn event, heard on the channel, finds the history and the header in Redis."""
    server = RedisServer(need_binary("redis-server"), str(tmp_path))
    await server.start()
    config = gateway_config(f'[redis]\nurl = "{server.url}"\n')
    client = make_redis(config.redis)
    try:
        backends = redis_backends(config, client, Registry(10, 10, Metrics()), "a")
        conv = await conversation(backends)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe("gw:events")
        placeholder = HistoryMessage("m-1", "assistant", "", "running", 1.0)
        reply = ReplyLog(
            message_id="m-1", conversation_id=conv.id, owner="alice", reply_to="c", model="m"
        )
        await backends.turn_writes.start_reply(conv, (placeholder,), reply, "frame")
        message = None
        while message is None:
            message = await pubsub.get_message(timeout=5.0)
        event = json.loads(message["data"])
        assert (event["kind"], event["message_id"], event["frame"]) == ("turn", "m-1", "frame")
        assert await client.hget("gw:reply:{m-1}", "conversation_id") == conv.id
        assert await client.lrange(f"gw:conv:{{{conv.id}}}:order", 0, -1) == ["m-1"]
        await pubsub.aclose()
        await backends.replies.aclose()
    finally:
        await client.aclose()
        await server.stop()


async def test_redis_counts_a_retried_settle_once(make_backends, request) -> None:
    """Settling again (a retry after an answer lost on the way) counts the usage once."""
    if request.node.callspec.params["make_backends"] != "redis":
        pytest.skip("memory stores never raise: nothing is retried")
    backends = await make_backends()
    writes, conv = backends.turn_writes, await conversation(backends)
    await writes.admit_and_claim(conv, ask(), "m-1", "c-1", "a", interrupt=False)
    placeholder = HistoryMessage("m-1", "assistant", "", "running", 1.0)
    reply = ReplyLog(
        message_id="m-1", conversation_id=conv.id, owner="alice", reply_to="c-1", model="m"
    )
    await writes.start_reply(conv, (placeholder,), reply, "frame")
    for _ in range(2):
        await writes.settle_and_record(conv, "m-1", ("text", "complete", ""), record(5))
    spent = await backends.usage.tokens_today(today=TODAY, user="alice", assistant="default")
    assert spent == SpentToday(5, 5, 0)
