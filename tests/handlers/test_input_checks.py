"""Client strings at every REST and handshake entry: ids of a documented charset, text that
is valid Unicode, and a JSON 400 for every body that is not JSON."""

from __future__ import annotations

import pytest

from tests.conftest import make_token
from tests.handlers.test_conversations import bearer

ADMIN = bearer("root", admin=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/conversations/lobby:members/messages",
        "/api/v1/conversations/a%20b/messages",
        "/api/v1/conversations/%ED%A0%80/messages",
        "/api/v1/generations/m-1:steps",
        "/api/v1/generations/" + "m" * 129,
    ],
    ids=["colon", "space", "cesu-surrogate", "generation-colon", "too-long"],
)
async def test_a_malformed_id_in_a_path_is_a_json_400(gateway, path: str) -> None:
    """An id outside 1-128 of A-Z a-z 0-9 . _ ~ - is bad_request, naming the id."""
    gw = await gateway()
    resp = await gw.client.get(path, headers=ADMIN)
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "bad_request"
    assert "id must be 1-128 characters" in body["error"]["message"]
    reset = await gw.client.post(
        "/api/v1/conversations/lobby:members/reset", headers=ADMIN, json={}
    )
    assert reset.status == 400


@pytest.mark.parametrize(
    "conversation_id",
    ["lobby:members", "a}b", "x" * 129, "sp ace", "\u00e9t\u00e9"],
    ids=["colon", "brace", "too-long", "space", "non-ascii"],
)
async def test_a_malformed_conversation_id_closes_the_handshake_with_1008(
    gateway, conversation_id: str
) -> None:
    """The socket is refused after the upgrade with 1008 and a reason naming the rule."""
    gw = await gateway()
    sock = await gw.connect(
        token=make_token("alice"), session_type="group", conversation_id=conversation_id
    )
    closed = await sock.ws.receive(timeout=10)
    assert closed.data == 1008
    assert closed.extra == "conversation_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -"


@pytest.mark.parametrize("value", ["-5", "1001", "25ms", "2.5"])
async def test_a_bad_frame_interval_closes_the_handshake_with_1008(gateway, value: str) -> None:
    """frame_interval_ms outside 0-1000 or not an integer: 1008 with a reason naming the rule."""
    gw = await gateway()
    sock = await gw.connect(token=make_token("alice"), frame_interval_ms=value)
    closed = await sock.ws.receive(timeout=10)
    assert closed.data == 1008
    assert closed.extra == "frame_interval_ms must be an integer from 0 to 1000"


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        (b"[" * 30000 + b"]" * 30000, 400, "bad_json", "JSON"),
        (b'{"message": "\xff"}', 400, "bad_json", "JSON"),
        (b'{"message": 1' + b"0" * 5000 + b"}", 400, "bad_json", "JSON"),
        (b'{"message": "hi \\ud800"}', 400, "bad_request", "'message'"),
        (b'{"message": "hi", "user": "\\udfff"}', 400, "bad_request", "'user'"),
        (b'{"message": "hi", "conversation_id": "a:b"}', 400, "bad_request", "conversation_id"),
        (b'{"message": "hi", "assistant": 7}', 422, "invalid_body", "'assistant'"),
    ],
    ids=["nested", "not-utf8", "long-number", "surrogate", "user", "bad-id", "wrong-type"],
)
async def test_every_bad_broadcast_body_gets_a_json_error(
    gateway, body: bytes, status: int, code: str, fragment: str
) -> None:
    """Deep nesting, bad UTF-8, huge numbers, lone surrogates, bad ids: a JSON error, no 500."""
    gw = await gateway()
    resp = await gw.client.post(
        "/api/v1/broadcast", data=body, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code and fragment in error["message"]


@pytest.mark.parametrize(
    "value", [b"Bearer \xff\xfe", b"Bearer \xed\xa0\x80", "Bearer é".encode()], ids=str
)
async def test_a_token_that_is_not_ascii_is_a_401_not_a_500(gateway, value: bytes) -> None:
    """aiohttp hands header bytes that are not UTF-8 on as lone surrogates: such a token is
    refused as unauthorized, on REST and on the socket handshake."""
    import asyncio

    gw = await gateway()
    upgrade = (
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    for path, extra in (
        (b"/api/v1/conversations", b"Connection: close\r\n"),
        (b"/api/v1/assistants/default/ws", upgrade),
    ):
        reader, writer = await asyncio.open_connection(gw.client.host, gw.client.port)
        writer.write(
            b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"Authorization: " + value
        )
        writer.write(b"\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        if extra == upgrade:  # upgraded, then the close frame: 1008 unauthorized
            assert b" 101 " in head.split(b"\r\n")[0]
            close = await asyncio.wait_for(reader.readexactly(4), 10)
            assert close[0] == 0x88 and close[2:4] == (1008).to_bytes(2, "big")
        else:
            assert b" 401 " in head.split(b"\r\n")[0]
            assert b'"unauthorized"' in await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await writer.wait_closed()
