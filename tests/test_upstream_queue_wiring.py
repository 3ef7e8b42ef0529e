"""upstream.max_concurrent over real sockets: queued frames, then start, or
upstream_throttled; a cancelled waiter leaves the line."""

from __future__ import annotations

from tests.conftest import make_token

LONG = "long sim:tokens=400 sim:delay_ms=10"
SHORT = "short sim:tokens=3 sim:delay_ms=0"


async def running(gw, user: str):
    sock = await gw.chat(token=make_token(user))
    await sock.send(type="message", id="c-1", text=LONG)
    await sock.recv_type("start")
    return sock


async def test_turns_beyond_the_cap_wait_in_order_then_start(gateway) -> None:
    """Over the cap: queued with the place (1: next), then start when a place frees."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 10\n")
    alice = await running(gw, "alice")
    bob = await gw.chat(token=make_token("bob"))
    await bob.send(type="message", id="b-1", text=SHORT)
    assert await bob.recv_type("queued") == {"type": "queued", "reply_to": "b-1", "position": 1}
    carol = await gw.chat(token=make_token("carol"))
    await carol.send(type="message", id="k-1", text=SHORT)
    assert (await carol.recv_type("queued"))["position"] == 2
    await alice.send(type="cancel")
    reply = await bob.reply()
    assert reply.end["type"] == "done" and reply.start["reply_to"] == "b-1"
    assert (await carol.recv_type("queued"))["position"] == 1
    assert (await carol.reply()).end["type"] == "done"
    assert len(gw.sim.state.requests) == 3


async def test_a_wait_past_the_timeout_is_upstream_throttled(gateway) -> None:
    """queue_timeout_s runs out: error upstream_throttled for that message; the
    conversation is free again."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 0.3\n")
    alice = await running(gw, "alice")
    bob = await gw.chat(token=make_token("bob"))
    await bob.send(type="message", id="b-1", text=SHORT)
    await bob.recv_type("queued")
    err = await bob.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("upstream_throttled", "b-1")
    await alice.send(type="cancel")
    await alice.recv_type("done")
    assert (await bob.ask(SHORT, "b-2")).end["type"] == "done"


async def test_a_turn_cancelled_while_waiting_leaves_the_line(gateway) -> None:
    """cancel before start: the next waiter moves up and no upstream request is made for it."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 10\n")
    alice = await running(gw, "alice")
    bob = await gw.chat(token=make_token("bob"))
    await bob.send(type="message", id="b-1", text=SHORT)
    await bob.recv_type("queued")
    carol = await gw.chat(token=make_token("carol"))
    await carol.send(type="message", id="k-1", text=SHORT)
    assert (await carol.recv_type("queued"))["position"] == 2
    await bob.send(type="cancel")
    assert (await carol.recv_type("queued"))["position"] == 1
    await alice.send(type="cancel")
    assert (await carol.reply()).end["type"] == "done"
    assert len(gw.sim.state.requests) == 2  # alice's and carol's


async def history(gw, sock, user: str) -> list[tuple[str, str, str]]:
    conv = sock.connected["conversation_id"]
    resp = await gw.client.get(
        f"/api/v1/conversations/{conv}/messages",
        headers={"Authorization": f"Bearer {make_token(user)}"},
    )
    assert resp.status == 200
    return [(m["role"], m["status"], m["content"]) for m in (await resp.json())["messages"]]


async def test_a_regenerate_beyond_the_cap_waits_in_the_same_line(gateway) -> None:
    """regenerate over the cap: queued for the answered message's id, history untouched
    while it waits, then the new reply replaces the old one."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 10\n")
    bob = await gw.chat(token=make_token("bob"))
    first = await bob.ask(SHORT, "b-1")
    before = await history(gw, bob, "bob")
    alice = await running(gw, "alice")
    await bob.send(type="regenerate")
    assert await bob.recv_type("queued") == {"type": "queued", "reply_to": "b-1", "position": 1}
    assert await history(gw, bob, "bob") == before  # nothing changes while it waits
    await alice.send(type="cancel")
    again = await bob.reply()
    assert again.start["reply_to"] == "b-1" and again.end["type"] == "done"
    assert again.message_id != first.message_id
    assert [(role, status) for role, status, _ in await history(gw, bob, "bob")] == [
        ("user", "complete"),
        ("assistant", "replaced"),
        ("assistant", "complete"),
    ]
    assert len(gw.sim.state.requests) == 3


async def test_an_edit_waiting_past_the_timeout_is_throttled_and_changes_nothing(
    gateway,
) -> None:
    """edit over the cap waits like a message: past queue_timeout_s, upstream_throttled for
    the edited message's id; history keeps the old text and the conversation is free."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 0.3\n")
    bob = await gw.chat(token=make_token("bob"))
    await bob.ask(SHORT, "b-1")
    before = await history(gw, bob, "bob")
    alice = await running(gw, "alice")
    await bob.send(type="edit", message_id="b-1", text=f"better {SHORT}")
    assert (await bob.recv_type("queued"))["reply_to"] == "b-1"
    err = await bob.recv_type("error")
    assert (err["code"], err["reply_to"]) == ("upstream_throttled", "b-1")
    assert await history(gw, bob, "bob") == before
    assert len(gw.sim.state.requests) == 2  # bob's first turn and alice's
    await alice.send(type="cancel")
    await alice.recv_type("done")
    assert (await bob.ask(SHORT, "b-2")).end["type"] == "done"


async def test_a_reset_takes_a_waiting_regenerate_out_of_the_line(gateway) -> None:
    """reset while a regenerate waits: it never starts, and the next waiter moves up."""
    gw = await gateway("[upstream]\nmax_concurrent = 1\nqueue_timeout_s = 10\n")
    bob = await gw.chat(token=make_token("bob"))
    await bob.ask(SHORT, "b-1")
    alice = await running(gw, "alice")
    await bob.send(type="regenerate")
    await bob.recv_type("queued")
    carol = await gw.chat(token=make_token("carol"))
    await carol.send(type="message", id="k-1", text=SHORT)
    assert (await carol.recv_type("queued"))["position"] == 2
    await bob.send(type="reset")
    await bob.recv_type("history_cleared")
    assert (await carol.recv_type("queued"))["position"] == 1
    await alice.send(type="cancel")
    assert (await carol.reply()).end["type"] == "done"
    assert await history(gw, bob, "bob") == []
    assert len(gw.sim.state.requests) == 3  # bob's first turn, alice's and carol's
