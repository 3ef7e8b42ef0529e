"""Two instances on one Redis share usage, a day's quota, the per-address windows and
the upstream concurrency cap."""

from __future__ import annotations

import asyncio

from gateway.llm.simulator import parse_options, reply_text
from tests.conftest import eventually, make_token

ALICE = make_token("alice")
BOB = make_token("bob")
ADMIN = make_token("root", admin=True)
SPEND = "spend sim:tokens=40 sim:delay_ms=1"


async def recorded(gw, replies: int) -> dict | None:
    resp = await gw.client.get("/api/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"})
    total: dict = (await resp.json())["total"]
    return total if total["replies"] >= replies else None


async def test_two_instances_share_one_days_quota_without_overshoot(instances) -> None:
    """Replies running on a and b when the quota is reached finish; then both refuse."""
    a, b = await instances("[assistants.default]\ntokens_per_day = 30\n")
    socks = [await a.chat(token=ALICE), await b.chat(token=BOB)]
    replies = await asyncio.gather(*(sock.ask(SPEND) for sock in socks))
    assert [r.end["finish_reason"] for r in replies] == ["stop", "stop"]
    total = await eventually(lambda: recorded(b, 2))
    used = sum(r.end["usage"]["input_tokens"] + r.end["usage"]["output_tokens"] for r in replies)
    assert (total["replies"], total["input_tokens"] + total["output_tokens"]) == (2, used)
    for sock in socks:
        await sock.send(type="message", id="c-2", text="more sim:tokens=3 sim:delay_ms=0")
        err = await sock.recv_type("error")
        assert err["code"] == "quota_exceeded"
    assert (await recorded(a, 2))["replies"] == 2  # nothing ran past the quota


async def test_anonymous_id_cap_per_address_holds_across_instances(instances) -> None:
    """max_anonymous_ids_per_ip_per_hour counts the ids minted on either instance."""
    a, b = await instances("[limits]\nmax_anonymous_ids_per_ip_per_hour = 3\n")
    statuses = []
    for n in range(8):
        gw = (a, b)[n % 2]
        gw.client.session.cookie_jar.clear()
        resp = await gw.client.get("/")
        statuses.append(resp.status)
    assert statuses.count(200) == 3 and statuses.count(429) == 5


async def test_the_concurrency_cap_holds_across_instances(instances) -> None:
    """max_concurrent = 1 shared: a turn on b waits while a's reply runs, then starts."""
    a, b = await instances("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 10\n")
    alice = await a.chat(token=ALICE)
    await alice.send(type="message", id="c-1", text="long sim:tokens=400 sim:delay_ms=10")
    await alice.recv_type("start")
    bob = await b.chat(token=BOB)
    await bob.send(type="message", id="b-1", text="short sim:tokens=3 sim:delay_ms=0")
    assert await bob.recv_type("queued") == {"type": "queued", "reply_to": "b-1", "position": 1}
    await alice.send(type="cancel")
    assert (await bob.reply()).end["type"] == "done"


async def test_a_continued_reply_resumed_on_b_is_the_uninterrupted_reply(instances, sim) -> None:
    """Produced on a, dropped at step 20 and continued; a viewer resuming on b gets the rest,
    done.continued, and held + rest equals the simulator's uninterrupted reply."""
    a, b = await instances(
        f"""
[upstreams.backup]
kind = "dashscope"
base_url = "{sim.url}"
api_key = "sk-backup"
[assistants.default]
upstreams = ["default", "backup"]
continue_on_failure = true
"""
    )
    prompt = "go on 你好 sim:tokens=60 sim:fault=drop sim:fault_at=20 sim:delay_ms=15"
    sock = await a.chat(token=ALICE)
    conv = sock.connected["conversation_id"]
    await sock.send(type="message", id="c-1", text=prompt)
    start = await sock.recv_type("start")
    held, last = "", 0
    while last < 5:
        frame = await sock.recv_type("delta")
        held, last = held + frame["text"], frame["seq"]
    sock.abort()
    other = await b.chat(token=ALICE, conversation_id=conv)
    await other.send(type="resume", message_id=start["message_id"], last_seq=last)
    rest = await other.reply(after_seq=last)
    assert rest.end["type"] == "done" and rest.end["continued"] == 1
    options = parse_options(prompt, None)
    assert held + rest.text == reply_text(options.prompt, options)
