"""Anonymous identity: a gateway-signed credential, and a public id that grants nothing."""

from __future__ import annotations

import aiohttp
import pytest

from gateway import keys
from gateway.auth import proxy_identity
from gateway.client_address import trusted_networks
from gateway.config import AuthConfig
from gateway.errors import Unauthorized
from tests.chatclient import ChatSocket
from tests.conftest import make_token

QUICK = "sim:tokens=3 sim:delay_ms=0"


async def visit(gw) -> str:
    """A new browser opens the page: the anonymous credential its cookie holds."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(gw.client.make_url("/")) as resp,
    ):
        return resp.cookies["gw_anon"].value


async def chat_as(gw, cookie: str, **query: str) -> ChatSocket:
    """A chat socket carrying ``cookie`` as gw_anon, its ``connected`` frame read."""
    gw.client.session.cookie_jar.clear()
    ws = await gw.client.ws_connect(
        "/api/v1/assistants/default/ws", params=query, headers={"Cookie": f"gw_anon={cookie}"}
    )
    sock = ChatSocket(ws)
    sock.connected = await sock.recv_type("connected")
    return sock


async def listed(gw, cookie: str) -> int:
    """GET /api/v1/conversations with ``cookie`` as gw_anon: the HTTP status."""
    gw.client.session.cookie_jar.clear()
    resp = await gw.client.get("/api/v1/conversations", headers={"Cookie": f"gw_anon={cookie}"})
    return resp.status


async def test_the_id_room_members_see_grants_nothing(gateway) -> None:
    """user_message.user names an anonymous member by a public id: sent back as the cookie
    (or as a bearer token), it neither lists nor opens the member's conversations."""
    gw = await gateway()
    alice, bob = await visit(gw), await visit(gw)
    private = await chat_as(gw, alice)
    await private.ask(f"my secret {QUICK}")
    mine = private.connected["conversation_id"]
    room_alice = await chat_as(gw, alice, session_type="group", conversation_id="lobby")
    room_bob = await chat_as(gw, bob, session_type="group", conversation_id="lobby")
    await room_alice.send(type="message", id="c-1", text=f"hello {QUICK}")
    seen = (await room_bob.recv_type("user_message"))["user"]
    assert seen == room_alice.connected["user"] == private.connected["user"]
    assert seen.startswith("anon-") and seen not in alice

    assert await listed(gw, seen) == 401
    resp = await gw.client.get(
        f"/api/v1/conversations/{mine}/messages", headers={"Authorization": f"Bearer {seen}"}
    )
    assert resp.status == 401
    thief = await chat_as(gw, seen)  # refused as a credential: a fresh identity instead
    assert thief.connected["user"] != seen
    gw.client.session.cookie_jar.clear()
    ws = await gw.client.ws_connect(
        "/api/v1/assistants/default/ws",
        params={"conversation_id": mine},
        headers={"Cookie": f"gw_anon={seen}"},
    )
    assert await ChatSocket(ws).closed() == (1008, "forbidden")
    assert await listed(gw, alice) == 200


async def test_made_up_and_altered_credentials_are_refused_and_replaced(gateway) -> None:
    """An invented ``anon-`` value, a credential with one character changed, or one signed by
    another gateway: REST says 401, the socket gives a fresh identity and a new cookie."""
    gw = await gateway()
    other = await gateway()  # its own secret
    real = await visit(gw)
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    for forged in ("anon-" + "x" * 22, flipped, real[:-4], await visit(other)):
        assert await listed(gw, forged) == 401, forged
        gw.client.session.cookie_jar.clear()
        ws = await gw.client.ws_connect(
            "/api/v1/assistants/default/ws", headers={"Cookie": f"gw_anon={forged}"}
        )
        renewed = ws._response.headers["Set-Cookie"]  # the upgrade's 101 response
        assert renewed.startswith("gw_anon=gwa1.") and forged not in renewed
        await ws.close()
    owner = await chat_as(gw, real)
    assert owner.connected["user"] == (await chat_as(gw, real)).connected["user"]


async def test_widget_token_from_rest_works_in_the_first_auth_frame(gateway) -> None:
    """POST /api/v1/anonymous gives a cookie-less iframe a credential; sent in the first auth
    frame (``?auth=frame``) or as a bearer token, it is the same identity every time."""
    gw = await gateway()
    gw.client.session.cookie_jar.clear()
    resp = await gw.client.post("/api/v1/anonymous", headers={"Cookie": ""})
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    token, public = body["token"], body["user"]
    assert token.startswith("gwa1.") and public.startswith("anon-")
    convs = []
    for _ in range(2):
        gw.client.session.cookie_jar.clear()
        ws = await gw.client.ws_connect("/api/v1/assistants/default/ws", params={"auth": "frame"})
        sock = ChatSocket(ws)
        await sock.send(type="auth", token=token)
        sock.connected = await sock.recv_type("connected")
        assert sock.connected["user"] == public
        await sock.ask(f"hi {QUICK}")
        convs.append(sock.connected["conversation_id"])
        await ws.close()
    gw.client.session.cookie_jar.clear()
    resp = await gw.client.get(
        "/api/v1/conversations", headers={"Authorization": f"Bearer {token}"}
    )
    assert sorted(c["id"] for c in await resp.json()) == sorted(convs)


async def test_the_cookie_holder_gets_its_own_token(gateway) -> None:
    """POST /api/v1/anonymous with a valid cookie returns that identity's credential."""
    gw = await gateway()
    cookie = await visit(gw)
    gw.client.session.cookie_jar.clear()
    resp = await gw.client.post(
        "/api/v1/anonymous",
        headers={"Cookie": f"gw_anon={cookie}", "Content-Type": "application/json"},
    )
    assert (await resp.json())["token"] == cookie


async def test_anonymous_credentials_are_refused_where_auth_is_required(gateway) -> None:
    """auth.required=true: no credential is issued and a signed one from before is refused."""
    open_gw = await gateway()
    token = (await (await open_gw.client.post("/api/v1/anonymous")).json())["token"]
    gw = await gateway("[auth]\nrequired = true\n", GATEWAY_AUTH__ANONYMOUS_SECRET="s" * 32)
    resp = await gw.client.post("/api/v1/anonymous")
    assert resp.status == 403
    ws = await gw.client.ws_connect("/api/v1/assistants/default/ws")
    sock = ChatSocket(ws)
    await sock.send(type="auth", token=token)
    assert await sock.closed() == (1008, "unauthorized")
    assert (await gw.chat(token=make_token("alice"))).connected["user"] == "alice"


async def test_a_configured_secret_is_shared_and_never_shown(gateway) -> None:
    """Two gateways with one auth.anonymous_secret accept each other's credentials; the
    secret's repr hides it."""
    secret = "an-anonymous-secret-of-at-least-32-bytes"
    a = await gateway(f'[auth]\nanonymous_secret = "{secret}"\n')
    b = await gateway(f'[auth]\nanonymous_secret = "{secret}"\n')
    cookie = await visit(a)
    assert (await chat_as(a, cookie)).connected["user"] == (await chat_as(b, cookie)).connected[
        "user"
    ]
    assert secret not in repr(a.config.auth)
    assert a.app[keys.ANONYMOUS] is not b.app[keys.ANONYMOUS]


async def test_no_token_may_take_an_anonymous_name(gateway) -> None:
    """A JWT whose sub starts with anon- (a member's public id, say) is refused: no signed-in
    user can pose as, or own the conversations of, an anonymous one."""
    gw = await gateway()
    shown = (await (await gw.client.post("/api/v1/anonymous")).json())["user"]
    ws = await gw.client.ws_connect("/api/v1/assistants/default/ws", params={"auth": "frame"})
    sock = ChatSocket(ws)
    await sock.send(type="auth", token=make_token(shown))
    assert await sock.closed() == (1008, "unauthorized")
    resp = await gw.client.get(
        "/api/v1/conversations", headers={"Authorization": f"Bearer {make_token(shown)}"}
    )
    assert resp.status == 401


def test_proxy_identity_is_read_only_from_trusted_peers() -> None:
    """The user header counts only from a trusted peer (v4 or v6), and only with a sane name."""
    auth = AuthConfig(trusted_user_header="X-Forwarded-User")
    trusted = trusted_networks(["10.0.0.0/8", "fd00::/8"])
    named = {"X-Forwarded-User": "alice"}
    found = proxy_identity(auth, trusted, "10.1.2.3", named)
    assert found is not None and found.user == "alice"
    assert proxy_identity(auth, trusted, "fd00::1", named) is not None
    assert proxy_identity(auth, trusted, "192.0.2.1", named) is None
    assert proxy_identity(auth, trusted, None, named) is None
    assert proxy_identity(auth, trusted, "10.1.2.3", {}) is None
    assert proxy_identity(AuthConfig(), trusted, "10.1.2.3", named) is None
    for bad in ("anon-abc", "x" * 257, "a\x00b"):
        with pytest.raises(Unauthorized):
            proxy_identity(auth, trusted, "10.1.2.3", {"X-Forwarded-User": bad})
