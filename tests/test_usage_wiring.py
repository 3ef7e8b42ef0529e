"""Usage over real sockets against the simulator: done.usage, the usage store, the token
counters and GET /api/v1/usage, for complete, cancelled, orphaned and failed replies."""

from __future__ import annotations

from typing import Any

from gateway.usage import estimate_tokens
from tests.conftest import eventually, make_token

ALICE = make_token("alice")
BOB = make_token("bob")
ADMIN = make_token("root", admin=True)


async def usage(gw, token: str, **params: str) -> tuple[int, dict[str, Any]]:
    resp = await gw.client.get(
        "/api/v1/usage", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status, await resp.json()


async def user_row(gw, user: str) -> dict[str, Any] | None:
    """The admin's usage row for ``user`` today, once it is there."""
    _, body = await usage(gw, ADMIN, group_by="user")
    return next((row for row in body["rows"] if row["key"] == user), None)


async def test_a_complete_reply_records_the_upstreams_reported_usage(gateway) -> None:
    """done.usage is the simulator's report (reasoning apart); the store and counters agree."""
    gw = await gateway()
    sock = await gw.chat(token=ALICE)
    reply = await sock.ask("count sim:tokens=12 sim:reasoning=3 sim:delay_ms=0")
    used = reply.end["usage"]
    assert used["output_tokens"] == 12 and used["reasoning_tokens"] == 3
    assert used["input_tokens"] > 0 and "estimated" not in used
    row = await eventually(lambda: user_row(gw, "alice"))
    assert row == {
        "key": "alice",
        "replies": 1,
        "input_tokens": used["input_tokens"],
        "output_tokens": 12,
        "reasoning_tokens": 3,
        "estimated_replies": 0,
    }
    metrics = (await (await gw.client.get("/metrics")).text()).splitlines()
    assert 'gateway_tokens_total{assistant="default",kind="output",model="qwen-plus"} 12.0' in (
        metrics
    ), [line for line in metrics if line.startswith("gateway_tokens")]


async def test_a_cancelled_reply_records_an_estimate_of_what_was_streamed(gateway) -> None:
    """cancel: done.usage is marked estimated, output from the streamed characters."""
    gw = await gateway()
    sock = await gw.chat(token=ALICE)
    await sock.send(type="message", id="c-1", text="long sim:tokens=500 sim:delay_ms=10")
    text = (await sock.recv_type("delta"))["text"]
    await sock.send(type="cancel")
    while True:
        frame = await sock.recv()
        if frame["type"] == "delta":
            text += frame["text"]
        elif frame["type"] == "done":
            break
    assert frame["finish_reason"] == "cancelled"
    assert frame["usage"]["estimated"] is True
    assert frame["usage"]["output_tokens"] == estimate_tokens(text)
    assert frame["usage"]["input_tokens"] > 0
    row = await eventually(lambda: user_row(gw, "alice"))
    assert (row["replies"], row["estimated_replies"]) == (1, 1)
    assert row["output_tokens"] == estimate_tokens(text)


async def test_an_orphaned_reply_is_recorded_when_its_grace_runs_out(gateway) -> None:
    """A reply with no viewer left is stopped after the grace and its estimate recorded."""
    gw = await gateway("[limits]\norphan_grace_s = 0.2\n")
    sock = await gw.chat(token=ALICE)
    await sock.send(type="message", id="c-1", text="long sim:tokens=1000 sim:delay_ms=10")
    await sock.recv_type("delta")
    await sock.ws.close()
    await gw.sim.state.wait_closed(within=5)
    row = await eventually(lambda: user_row(gw, "alice"))
    assert (row["replies"], row["estimated_replies"]) == (1, 1)
    assert row["output_tokens"] > 0 and row["input_tokens"] > 0


async def test_a_failed_reply_is_recorded_as_an_estimate(gateway) -> None:
    """An upstream error mid-stream ends the reply with error; its usage is still recorded."""
    gw = await gateway()
    sock = await gw.chat(token=ALICE)
    reply = await sock.ask("fail sim:tokens=50 sim:fault=drop sim:fault_at=5 sim:delay_ms=0")
    assert reply.end["type"] == "error"
    row = await eventually(lambda: user_row(gw, "alice"))
    assert (row["replies"], row["estimated_replies"]) == (1, 1)
    assert row["output_tokens"] == estimate_tokens(reply.text)


async def test_users_see_only_their_own_usage_and_admins_see_everyone(gateway) -> None:
    """GET /api/v1/usage: a user's rows are their own; an admin's cover every user."""
    gw = await gateway()
    for token in (ALICE, BOB):
        sock = await gw.chat(token=token)
        await sock.ask("hi sim:tokens=4 sim:delay_ms=0")
    await eventually(lambda: user_row(gw, "bob"))
    status, body = await usage(gw, ALICE, group_by="user")
    assert status == 200 and [r["key"] for r in body["rows"]] == ["alice"]
    assert body["total"]["replies"] == 1
    status, body = await usage(gw, ADMIN, group_by="user")
    assert sorted(r["key"] for r in body["rows"]) == ["alice", "bob"]
    assert body["total"]["replies"] == 2
    status, body = await usage(gw, ALICE, user="bob")
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await usage(gw, ADMIN, group_by="week")
    assert status == 400 and "group_by" in body["error"]["message"]
    stranger = await (await gw.client.get("/api/v1/usage", params={"group_by": "user"})).json()
    assert stranger["total"]["replies"] == 0 and len(stranger["rows"]) == 1
