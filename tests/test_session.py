"""The chat socket's handshake: token sources, refusals by close code, Origin, anonymous ids."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import SECRET, make_token, wait_until


async def _refused(gw, **kw) -> tuple[int | None, str]:
    sock = await gw.connect(**kw)
    return await sock.closed()


async def test_anonymous_browser_gets_connected_with_stable_cookie_id(gateway) -> None:
    """auth.required=false: a browser without a token chats as a stable anonymous id."""
    gw = await gateway()
    first = await gw.chat()
    user = first.connected["user"]
    assert user.startswith("anon-")
    assert first.connected["protocol"] == 1 and first.connected["offline_demo"] is False
    second = await gw.chat()  # the test client's cookie jar carries gw_anon
    assert second.connected["user"] == user


@pytest.mark.parametrize("source", ["header", "subprotocol", "query", "frame"])
async def test_every_token_source_authenticates(gateway, source: str) -> None:
    """Authorization header, bearer subprotocol, query parameter and first auth frame all work."""
    gw = await gateway("[auth]\nrequired = true\n")
    token = make_token("alice")
    path = "/api/v1/assistants/default/ws"
    client = gw.client
    if source == "header":
        ws = await client.ws_connect(path, headers={"Authorization": f"Bearer {token}"})
    elif source == "subprotocol":
        ws = await client.ws_connect(path, protocols=("gateway.v1", f"bearer.{token}"))
        assert ws.protocol == "gateway.v1"  # the token is never echoed
    elif source == "query":
        ws = await client.ws_connect(path, params={"token": token})
    else:
        ws = await client.ws_connect(path)
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
        await ws.send_json({"type": "auth", "token": token})
    frame = await ws.receive_json(timeout=5)
    assert frame["type"] == "connected" and frame["user"] == "alice"
    await ws.close()


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: make_token(ttl=-10), id="expired"),
        pytest.param(lambda: make_token(aud="someone-else"), id="wrong-audience"),
        pytest.param(
            lambda: jwt.encode(
                {"sub": "eve", "exp": int(time.time()) + 60, "aud": "gateway-tests"},
                "another-key-that-is-also-long-enough-for-hs256!",
                algorithm="HS256",
            ),
            id="other-key",
        ),
        pytest.param(
            lambda: jwt.encode(
                {"sub": "eve", "exp": int(time.time()) + 60, "aud": "gateway-tests"},
                None,
                algorithm="none",
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda: jwt.encode(
                {"sub": "eve", "exp": int(time.time()) + 60, "aud": "gateway-tests"},
                SECRET,
                algorithm="HS512",
            ),
            id="alg-not-pinned",
        ),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
    ],
)
async def test_bad_tokens_close_1008_unauthorized(gateway, token) -> None:
    """Invalid, expired, wrongly signed, unsigned or wrong-audience tokens: 1008 unauthorized."""
    gw = await gateway("[auth]\nrequired = true\n")
    assert await _refused(gw, token=token()) == (1008, "unauthorized")


async def test_missing_token_when_required_closes_after_first_non_auth_frame(gateway) -> None:
    """auth.required: a first frame that is not auth (or ping) is refused with 1008."""
    gw = await gateway("[auth]\nrequired = true\n")
    sock = await gw.connect()
    await sock.send(type="message", id="c-1", text="hi")
    assert await sock.closed() == (1008, "unauthorized")


async def test_auth_deadline_closes_silent_socket(gateway) -> None:
    """No token within auth.auth_timeout_s: 1008 unauthorized."""
    gw = await gateway("[auth]\nrequired = true\nauth_timeout_s = 0.3\n")
    assert await _refused(gw) == (1008, "unauthorized")


async def test_unknown_assistant_closes_1008(gateway) -> None:
    """An assistant that does not exist: 1008 unknown assistant."""
    gw = await gateway()
    assert await _refused(gw, assistant="nobody") == (1008, "unknown assistant")


async def test_origin_not_allowed_closes_1008_forbidden(gateway) -> None:
    """A cross-site Origin not in allowed_origins is refused; a listed one is accepted."""
    gw = await gateway('[assistants.support]\nallowed_origins = ["https://shop.example"]\n')
    code = await _refused(gw, assistant="support", headers={"Origin": "https://evil.example"})
    assert code == (1008, "forbidden")
    ok = await gw.chat("support", headers={"Origin": "https://shop.example"})
    assert ok.connected["assistant"] == "support"


async def test_someone_elses_person_conversation_is_forbidden(gateway) -> None:
    """Joining another user's person conversation by id: 1008 forbidden."""
    gw = await gateway("[auth]\nrequired = true\n")
    alice = await gw.chat(token=make_token("alice"))
    conv = alice.connected["conversation_id"]
    code = await _refused(gw, token=make_token("bob"), conversation_id=conv)
    assert code == (1008, "forbidden")


async def test_too_many_connections_for_a_user_closes_1013(gateway) -> None:
    """Over limits.max_connections_per_user: 1013 try again later."""
    gw = await gateway("[limits]\nmax_connections_per_user = 2\n")
    token = make_token("alice")
    await gw.chat(token=token)
    await gw.chat(token=token)
    assert await _refused(gw, token=token) == (1013, "try again later")


async def test_sockets_waiting_for_their_auth_frame_count_against_max_connections(gateway) -> None:
    """Sockets that never send their auth frame fill limits.max_connections; leaving frees it."""
    from gateway import keys

    gw = await gateway("[auth]\nrequired = true\n[limits]\nmax_connections = 2\n")
    registry = gw.app[keys.REGISTRY]
    silent = [await gw.connect(), await gw.connect()]  # no token, no auth frame
    await wait_until(lambda: registry.waiting == 2)
    assert await _refused(gw, token=make_token("alice")) == (1013, "try again later")
    await silent[0].ws.close()
    await wait_until(lambda: registry.waiting == 1)
    await gw.chat(token=make_token("alice"))


async def test_oversize_frame_closes_1009(gateway) -> None:
    """A frame over limits.max_frame_bytes: 1009 message too big."""
    gw = await gateway("[limits]\nmax_frame_bytes = 1024\n")
    sock = await gw.chat()
    await sock.send(type="message", id="c-1", text="x" * 5000)
    assert await sock.closed() == (1009, "message too big")


async def test_token_expiring_warning_then_close_unless_refreshed(gateway) -> None:
    """A minute before exp the server warns; a fresh auth frame keeps the socket open."""
    gw = await gateway("[auth]\nrequired = true\n")
    sock = await gw.chat(token=make_token("alice", ttl=61))
    warning = await sock.recv_type("error", timeout=5)
    assert warning["code"] == "token_expiring" and warning["retryable"] is True
    await sock.send(type="auth", token=make_token("alice", ttl=3600))
    await sock.send(type="ping")
    assert (await sock.recv_type("pong"))["type"] == "pong"


async def test_expired_token_on_live_socket_closes_1008_token_expired(gateway) -> None:
    """Without a refresh, the socket closes with 1008 token expired at exp."""
    gw = await gateway("[auth]\nrequired = true\n")
    sock = await gw.chat(token=make_token("alice", ttl=2))
    assert await sock.closed(timeout=10) == (1008, "token expired")


def test_random_tokens_are_urlsafe_unique_and_of_the_asked_length() -> None:
    """The id pool: URL-safe base64 characters, never one token twice, any length."""
    import re

    from gateway.auth import random_token

    tokens = [random_token(16) for _ in range(2000)] + [random_token(22) for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}|[A-Za-z0-9_-]{22}", t) for t in tokens)


async def _history(gw, conv: str, sub: str) -> tuple[int, list[str]]:
    resp = await gw.client.get(
        f"/api/v1/conversations/{conv}/messages",
        headers={"Authorization": f"Bearer {make_token(sub)}"},
    )
    body = await resp.json()
    return resp.status, [m["role"] for m in body.get("messages", [])]


async def test_only_the_owner_or_an_admin_resets_a_room_over_the_socket(gateway) -> None:
    """A room member's reset gets error forbidden and history stays; the owner's and an
    admin's reset clear it (REST's rule, on the socket)."""
    gw = await gateway()
    owner = await gw.chat(token=make_token("alice"), session_type="group", conversation_id="r3")
    await owner.ask("keep this sim:tokens=3 sim:delay_ms=0")
    member = await gw.chat(token=make_token("bob"), session_type="group", conversation_id="r3")
    await member.send(type="reset")
    error = await member.recv_type("error")
    assert error["code"] == "forbidden" and error["retryable"] is False
    assert await _history(gw, "r3", "alice") == (200, ["user", "assistant"])
    await member.send(type="ping")
    assert (await member.recv_type("pong"))["type"] == "pong"  # still open
    admin = await gw.chat(
        token=make_token("root", admin=True), session_type="group", conversation_id="r3"
    )
    await admin.send(type="reset")
    assert (await owner.recv_type("history_cleared"))["conversation_id"] == "r3"
    assert await _history(gw, "r3", "alice") == (200, [])
    await owner.ask("again sim:tokens=3 sim:delay_ms=0")
    await owner.send(type="reset")
    await owner.recv_type("history_cleared")
    assert await _history(gw, "r3", "alice") == (200, [])


async def test_signing_in_inside_a_room_takes_nothing_from_its_owner(gateway) -> None:
    """An anonymous member of alice's empty room sends an auth frame with bob's token: bob
    joins as a member; alice still owns the room and is still in it."""
    gw = await gateway()
    alice = await gw.chat(token=make_token("alice"), session_type="group", conversation_id="r4")
    gw.client.session.cookie_jar.clear()
    intruder = await gw.chat(session_type="group", conversation_id="r4")
    assert intruder.connected["user"].startswith("anon-")
    await intruder.send(type="auth", token=make_token("bob"))
    assert (await intruder.recv_type("connected"))["user"] == "bob"
    assert await _history(gw, "r4", "alice") == (200, [])
    listed = await gw.client.get(
        "/api/v1/conversations", headers={"Authorization": f"Bearer {make_token('alice')}"}
    )
    assert [c["id"] for c in await listed.json()] == ["r4"]
    await alice.ask("still mine sim:tokens=3 sim:delay_ms=0")
    assert (await _history(gw, "r4", "alice"))[1] == ["user", "assistant"]
    await intruder.send(type="reset")
    assert (await intruder.recv_type("error"))["code"] == "forbidden"


async def test_signing_in_inside_an_anonymous_person_conversation_is_refused(gateway) -> None:
    """Someone else's token in an anonymous person conversation: error forbidden, nothing
    changes (the page sends its token first, with ?auth=frame, instead)."""
    gw = await gateway()
    anon = await gw.chat()
    await anon.send(type="auth", token=make_token("bob"))
    error = await anon.recv_type("error")
    assert error["code"] == "forbidden" and "reconnect" in error["message"]
    reply = await anon.ask("still anonymous sim:tokens=3 sim:delay_ms=0")
    assert reply.end["type"] == "done"
    assert (await _history(gw, anon.connected["conversation_id"], "bob"))[0] == 403
    gw.client.session.cookie_jar.clear()
    ws = await gw.client.ws_connect("/api/v1/assistants/default/ws", params={"auth": "frame"})
    await ws.send_json({"type": "auth", "token": make_token("bob")})
    assert (await ws.receive_json(timeout=5))["user"] == "bob"
    await ws.close()
