"""Presence in Redis: per-user caps count every instance, as of its last beat."""

from __future__ import annotations

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
