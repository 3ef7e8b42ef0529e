"""Generation status over REST and its WebSocket watch."""

from __future__ import annotations

from tests.conftest import make_token
from tests.handlers.test_conversations import bearer


async def test_status_of_a_finished_generation(gateway) -> None:
    """GET returns the contract's fields for the owner; others get 403, unknown ids 404."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    reply = await sock.ask("hi sim:tokens=7 sim:delay_ms=0")
    resp = await gw.client.get(f"/api/v1/generations/{reply.message_id}", headers=bearer("alice"))
    body = await resp.json()
    assert body == {
        "message_id": reply.message_id,
        "conversation_id": sock.connected["conversation_id"],
        "status": "completed",
        "seq": 7,
        "output_chars": len(reply.text),
        "finish_reason": "stop",
        "started_at": body["started_at"],
        "finished_at": body["finished_at"],
    }
    assert body["started_at"].endswith("Z") and body["finished_at"] >= body["started_at"]
    other = await gw.client.get(f"/api/v1/generations/{reply.message_id}", headers=bearer("bob"))
    assert other.status == 403
    admin = await gw.client.get(
        f"/api/v1/generations/{reply.message_id}", headers=bearer("root", admin=True)
    )
    assert admin.status == 200
    missing = await gw.client.get("/api/v1/generations/m-nope", headers=bearer("alice"))
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_watch_pushes_status_while_running_then_closes_1000(gateway) -> None:
    """The watch sends status at start, about every second while running, the end, then 1000."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    await sock.send(type="message", id="c-1", text="slow sim:tokens=25 sim:delay_ms=100")
    start = await sock.recv_type("start")
    watch = await gw.client.ws_connect(
        f"/api/v1/generations/{start['message_id']}/ws", headers=bearer("alice")
    )
    frames = []
    while True:
        msg = await watch.receive(timeout=10)
        if msg.type.name != "TEXT":
            break
        frames.append(msg.json())
    assert watch.close_code == 1000
    assert frames[0]["type"] == "status" and frames[0]["status"] == "running"
    assert frames[-1]["status"] == "completed" and frames[-1]["seq"] == 25
    assert 2 <= len(frames) <= 6  # ~2.5 s of reply, at most one push a second, plus the end
    assert [f["seq"] for f in frames] == sorted(f["seq"] for f in frames)


async def test_watch_of_someone_elses_generation_is_refused(gateway) -> None:
    """The watch closes with 1008 for a user who does not own the generation."""
    gw = await gateway()
    sock = await gw.chat(token=make_token("alice"))
    reply = await sock.ask("hi sim:tokens=2 sim:delay_ms=0")
    watch = await gw.client.ws_connect(
        f"/api/v1/generations/{reply.message_id}/ws", headers=bearer("bob")
    )
    msg = await watch.receive(timeout=5)
    assert msg.type.name == "CLOSE" and watch.close_code == 1008
