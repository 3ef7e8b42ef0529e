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

    from gateway.auth import anonymous_id, new_anonymous_id, random_token

    tokens = [random_token(16) for _ in range(2000)] + [random_token(22) for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}|[A-Za-z0-9_-]{22}", t) for t in tokens)
    anon = new_anonymous_id()
    assert anonymous_id(anon) == anon and len(anon) == len("anon-") + 22
