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


async def _watch_frames(watch) -> list[dict]:
    """Every status frame until the socket closes."""
    frames = []
    while True:
        msg = await watch.receive(timeout=10)
        if msg.type.name != "TEXT":
            return frames
        frames.append(msg.json())


async def _running_reply(gw, user: str = "alice") -> str:
    sock = await gw.chat(token=make_token(user))
    await sock.send(type="message", id="c-1", text="slow sim:tokens=6 sim:delay_ms=100")
    return (await sock.recv_type("start"))["message_id"]


async def test_watch_takes_its_token_from_a_first_auth_frame(gateway) -> None:
    """A browser's watch: no header, the token in a first auth frame; statuses follow."""
    gw = await gateway()
    message_id = await _running_reply(gw)
    watch = await gw.client.ws_connect(f"/api/v1/generations/{message_id}/ws")
    await watch.send_json({"type": "ping"})
    assert (await watch.receive_json(timeout=5))["type"] == "pong"
    await watch.send_json({"type": "auth", "token": make_token("alice")})
    frames = await _watch_frames(watch)
    assert watch.close_code == 1000 and frames[-1]["status"] == "completed"


async def test_watch_takes_its_token_from_the_bearer_subprotocol(gateway) -> None:
    """`gateway.v1, bearer.<token>` authenticates, and gateway.v1 is the protocol selected."""
    gw = await gateway()
    message_id = await _running_reply(gw)
    watch = await gw.client.ws_connect(
        f"/api/v1/generations/{message_id}/ws",
        protocols=("gateway.v1", f"bearer.{make_token('alice')}"),
    )
    assert watch.protocol == "gateway.v1"
    frames = await _watch_frames(watch)
    assert watch.close_code == 1000 and frames[-1]["status"] == "completed"


async def test_watch_takes_its_token_from_the_query(gateway) -> None:
    """`?token=` authenticates the watch, as it does the chat socket."""
    gw = await gateway()
    message_id = await _running_reply(gw)
    watch = await gw.client.ws_connect(
        f"/api/v1/generations/{message_id}/ws", params={"token": make_token("alice")}
    )
    frames = await _watch_frames(watch)
    assert watch.close_code == 1000 and frames[-1]["status"] == "completed"


async def test_watch_auth_frame_of_another_user_or_none_in_time_is_refused(gateway) -> None:
    """Another user's auth frame gets 1008; so does silence past auth.auth_timeout_s."""
    gw = await gateway("[auth]\nauth_timeout_s = 0.3\n")
    message_id = await _running_reply(gw)
    other = await gw.client.ws_connect(f"/api/v1/generations/{message_id}/ws")
    await other.send_json({"type": "auth", "token": make_token("bob")})
    assert await _watch_frames(other) == [] and other.close_code == 1008
    silent = await gw.client.ws_connect(f"/api/v1/generations/{message_id}/ws")
    assert await _watch_frames(silent) == [] and silent.close_code == 1008
