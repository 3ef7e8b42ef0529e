"""Redis trouble costs a clear error and nothing else; replies span instances' lifecycles."""

from __future__ import annotations

from tests.conftest import eventually, make_token
from tests.stores.conftest import started
from tests.stores.test_redis_instances import end_of


async def test_while_redis_is_down_each_request_gets_a_clear_error_and_nothing_crashes(
    instances, redis_server
) -> None:
    """Redis down: a new socket closes 1013, a message gets store_unavailable, REST says 503,
    /readyz names redis; once it is back, the same socket chats again."""
    (a,) = await instances(names=("a",))
    token = make_token("alice")
    sock = await a.chat(token=token)
    await redis_server.stop()
    refused = await a.connect(token=token)
    code, reason = await refused.closed()
    assert (code, reason) == (1013, "try again later")
    await sock.send(type="message", id="c-1", text="hello")
    error = await sock.recv_type("error")
    assert error["code"] == "store_unavailable" and error["retryable"] is True
    assert error["reply_to"] == "c-1"
    resp = await a.client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "store_unavailable"
    ready = await a.client.get("/readyz")
    assert ready.status == 503 and "redis" in (await ready.json())["down"]
    await redis_server.start()

    async def ready_again() -> bool:
        return (await a.client.get("/readyz")).status == 200

    await eventually(ready_again)
    reply = await sock.ask("hello again sim:tokens=5", msg_id="c-2")
    assert reply.end["type"] == "done"


async def test_a_reply_watched_only_from_another_instance_is_not_stopped_as_orphaned(
    instances,
) -> None:
    """The sender leaves a at once; a viewer on b keeps the reply alive past orphan_grace_s."""
    a, b = await instances("[limits]\norphan_grace_s = 0.3\n")
    token = make_token("alice")
    sender, conv, start = await started(a, token, "sim:tokens=60 sim:delay_ms=25 story")
    await sender.ws.close()
    viewer = await b.chat(token=token, conversation_id=conv)
    await viewer.send(type="resume", message_id=start["message_id"], last_seq=0)
    reply = await viewer.reply(timeout=20)  # 1.5 s of steps: five times the grace
    assert reply.end["type"] == "done" and reply.end["finish_reason"] == "stop"
    assert reply.end["seq"] == 60


async def test_an_interrupt_sent_on_b_ends_a_reply_on_a_before_the_new_one_starts(
    instances,
) -> None:
    """Both tabs see the old reply end as interrupted, then the new reply's start."""
    a, b = await instances()
    token = make_token("alice")
    tab_a, conv, old = await started(a, token, "sim:tokens=400 sim:delay_ms=20 long")
    tab_b = await b.chat(token=token, conversation_id=conv)
    await tab_b.send(type="resume", message_id=old["message_id"], last_seq=0)
    await tab_b.recv_type("start")
    await tab_b.send(type="message", id="c-2", text="never mind sim:tokens=5", interrupt=True)
    for tab in (tab_a, tab_b):
        ended = await end_of(tab, old["message_id"])
        assert ended["type"] == "done" and ended["finish_reason"] == "interrupted"
        new = await tab.reply()
        assert new.start["reply_to"] == "c-2" and new.end["finish_reason"] == "stop"


async def test_a_reset_on_b_clears_the_history_and_tells_viewers_on_a(instances) -> None:
    """reset on b: a's viewer gets history_cleared; the history is empty from both."""
    a, b = await instances()
    token = make_token("alice")
    tab_a = await a.chat(token=token)
    conv = tab_a.connected["conversation_id"]
    await tab_a.ask("remember sim:tokens=5")
    tab_b = await b.chat(token=token, conversation_id=conv)
    await tab_b.send(type="reset")
    for tab in (tab_a, tab_b):
        cleared = await tab.recv_type("history_cleared")
        assert cleared["conversation_id"] == conv
    for gw in (a, b):
        resp = await gw.client.get(
            f"/api/v1/conversations/{conv}/messages",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert (await resp.json())["messages"] == []


async def test_the_gateway_starts_while_redis_is_down_and_joins_when_it_comes_up(
    gateway, redis_server
) -> None:
    """No Redis at start-up: the gateway serves /healthz, says 503 on /readyz, and chats once
    Redis answers, without a restart."""
    await redis_server.stop()
    gw = await gateway(f'[redis]\nurl = "{redis_server.url}"\nheartbeat_s = 0.2\n')
    assert (await gw.client.get("/healthz")).status == 200
    assert (await gw.client.get("/readyz")).status == 503
    await redis_server.start()

    async def ready() -> bool:
        return (await gw.client.get("/readyz")).status == 200

    await eventually(ready)
    sock = await gw.chat(token=make_token("alice"))
    assert (await sock.ask("hello sim:tokens=5")).end["type"] == "done"


async def test_anonymous_visitors_while_redis_is_down_get_the_page_and_a_clear_refusal(
    instances, redis_server
) -> None:
    """The anonymous signing secret lives in Redis: while it is down the page still loads
    (without a cookie), a socket closes 1013 and POST /api/v1/anonymous says 503; once it is
    back, the visitor chats."""
    (a,) = await instances(names=("a",))
    await redis_server.stop()
    page = await a.client.get("/")
    assert page.status == 200 and "gw_anon" not in page.cookies
    refused = await a.connect()
    assert await refused.closed() == (1013, "try again later")
    resp = await a.client.post("/api/v1/anonymous")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "store_unavailable"
    await redis_server.start()

    async def chatting() -> bool:
        return (await a.client.post("/api/v1/anonymous")).status == 200

    await eventually(chatting)
    sock = await a.chat()
    assert sock.connected["user"].startswith("anon-")
    assert (await sock.ask("hello sim:tokens=5")).end["type"] == "done"
