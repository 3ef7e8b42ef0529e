"""Hostile input everywhere a client string enters, while a bystander streams a reply.

Every client-controlled field of every frame, of the broadcast body, of the REST paths and of
the handshake's query gets lone surrogates, NUL and other control characters, 1 MB strings,
JSON nested 30,000 deep and values of the wrong type (seeded: the same run every time). After
each frame a ``ping`` must be answered, so a writer task that died shows at once. At the end:
no 1011 and no HTTP 500 was seen, the fuzzed room is not left busy (after a ``cancel`` a plain
message starts a reply that both of its viewers receive), and the bystander, in another
conversation, received exactly the text its history holds. In memory and on a real Redis.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.chatclient import ChatSocket
from tests.conftest import make_token

pytestmark = pytest.mark.timeout(90)

SEED = 13
DEEP = "\u0000deep\u0000"  # stands for JSON nested 30,000 deep, spliced into the text
NESTED = "[" * 30_000 + "]" * 30_000
ROOM = "fuzz-room"

# Frames past 64 KB and bodies past 64 KB would be refused by size before their fields are
# read; the limits are raised so that 1 MB values reach the field checks.
CONFIG = """
[limits]
max_frame_bytes = 4194304
max_request_bytes = 4194304
messages_per_minute = 100000
max_connections_per_user = 1000
"""

# A close the contract allows while fuzzing: `disconnect` (1000), a refused token (1008).
# 1011 (a bug) never.
ALLOWED_CLOSES = {1000, 1008}


def hostile_values(rng: random.Random) -> list[Any]:
    """Strings a careless or hostile client sends, then values of the wrong type."""
    alphabet = [
        "\x00", "\x01", "\x1b", "\x7f", "\x85", "\ud800", "\udbff", "\udc00", "\udfff",
        "\u2028", "\ufeff", "\uffff", "a", "é", "中", "😀", '"', "\\", "{", "}", ":", " ",
    ]  # fmt: skip
    junk = ["".join(rng.choices(alphabet, k=rng.randint(1, 300))) for _ in range(10)]
    strings = [
        "\ud800",
        "hi \udfff there",
        "\x00",
        "a\x00b\x1b[2J\x07",
        "\u2028\u2029\x85",
        "lobby:members",
        "{lobby}:msgs",
        "",
        " ",
        "x" * 1_000_000,
        "中" * 200_000,  # 1.2 MB as the \u escapes a client's JSON encoder writes
        "\ud800" + "y" * 1_000_000,
        DEEP,
    ]
    wrong = [None, True, 0, -1, 1.5e308, 2**70, [], {}, ["x"], {"a": "b"}, [[["\ud800"]]]]
    return strings + junk + wrong


def encode(frame: dict[str, Any]) -> str:
    """JSON as a client sends it (surrogates escaped as \\ud800), the deep value spliced in."""
    return json.dumps(frame).replace(json.dumps(DEEP), NESTED)


def frame_targets() -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
    """(a valid frame, the path of one client field in it) for every field of every frame."""
    message = {"type": "message", "id": "f", "text": "hello sim:tokens=2 sim:delay_ms=0"}
    parts = {"type": "message", "id": "f", "message": [{"type": "Plain", "text": "hi"}]}
    targets: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
        *((message, (k,)) for k in ("id", "text", "interrupt", "temperature", "top_p")),
        (message, ("max_tokens",)),
        (parts, ("message",)),
        (parts, ("message", 0, "type")),
        (parts, ("message", 0, "text")),
        ({"type": "cancel", "message_id": "m-1"}, ("message_id",)),
        ({"type": "resume", "message_id": "m-1", "last_seq": 0}, ("message_id",)),
        ({"type": "resume", "message_id": "m-1", "last_seq": 0}, ("last_seq",)),
        ({"type": "ping"}, ("type",)),
        ({"type": "ping"}, (DEEP,)),  # an unknown field: its name is what is fuzzed
        ({"type": "auth", "token": "t"}, ("token",)),
    ]
    return targets


def with_value(template: dict[str, Any], path: tuple[Any, ...], value: Any, n: int) -> str:
    frame = json.loads(json.dumps(template))
    if frame.get("id") == "f":
        frame["id"] = f"f-{n}"  # a fresh client id: each message is a new turn
    if path == (DEEP,):  # the field name itself
        name = value if isinstance(value, str) else json.dumps(value)
        frame[name] = 1
        return json.dumps(frame).replace(json.dumps(DEEP), json.dumps("deep"))
    target = frame
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return encode(frame)


class Room:
    """The fuzzed group conversation: a sender (reconnected whenever a frame closes it, as
    `disconnect` and a bad `auth` do) and an observer that reads everything, all along."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self.token = make_token("mallory")
        self.sender: ChatSocket | None = None
        self.errors: list[dict[str, Any]] = []
        self.closes: list[int | None] = []
        self.started: set[str] = set()  # replies the sender saw start and not yet end
        self.observed: list[dict[str, Any]] = []

    async def open(self) -> asyncio.Task[None]:
        """Join both; the observer's reading task ends after the reply to ``final``."""
        await self._join_sender()
        observer = await self.gw.chat(
            token=make_token("observer"), session_type="group", conversation_id=ROOM
        )
        return asyncio.create_task(self._observe(observer))

    async def _observe(self, observer: ChatSocket) -> None:
        final = None
        while True:
            frame = await observer.recv(timeout=30)
            self.observed.append(frame)
            if frame["type"] == "start" and frame["reply_to"] == "final":
                final = frame["message_id"]
            elif frame["type"] == "done" and frame["message_id"] == final:
                return

    def final_text(self) -> str:
        """The text of the reply to ``final`` as the observer received it."""
        mid = next(f["message_id"] for f in self.observed if f.get("reply_to") == "final")
        return "".join(
            f["text"] for f in self.observed if f["type"] == "delta" and f["message_id"] == mid
        )

    async def _join_sender(self) -> None:
        self.sender = await self.gw.chat(
            token=self.token, session_type="group", conversation_id=ROOM
        )
        self.started.clear()  # the old socket's replies: followed again below if running
        running = self.sender.connected.get("running_message_id")
        if running:
            await self.sender.send(type="resume", message_id=running, last_seq=0)

    async def send(self, text: str) -> None:
        """Send one fuzzed frame, then a ping; read everything up to the pong."""
        assert self.sender is not None
        await self.sender.ws.send_str(text)
        await self.sender.send(type="ping")
        while True:
            msg = await self.sender.ws.receive(timeout=15)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
                self.closes.append(self.sender.ws.close_code)
                await self._join_sender()
                return
            frame = json.loads(msg.data)
            self._note(frame)
            if frame["type"] == "pong":
                return

    def _note(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "error" and "message_id" not in frame:
            assert {"code", "message", "retryable"} <= set(frame), frame
            self.errors.append(frame)
        elif frame["type"] == "start":
            self.started.add(frame["message_id"])
        elif frame["type"] in ("done", "error"):
            self.started.discard(frame.get("message_id", ""))

    async def settle(self) -> None:
        """Stop whatever the fuzz started and read until every started reply has ended."""
        assert self.sender is not None
        await self.sender.send(type="cancel")
        while self.started:
            self._note(await self.sender.recv(timeout=15))


async def rest_fuzz(gw, values: list[Any]) -> list[int]:
    """The broadcast body's fields, raw bodies, and ids in REST paths: every status seen."""
    admin = {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    statuses = []

    async def check(resp: aiohttp.ClientResponse) -> None:
        statuses.append(resp.status)
        body = await resp.json()  # JSON whatever the status
        assert resp.status < 500, body
        if resp.status >= 400:
            assert {"code", "message"} <= set(body["error"])

    json_headers = {**admin, "Content-Type": "application/json"}
    for field in ("message", "assistant", "conversation_id", "user"):
        for value in values:
            body = encode({"message": "hi", field: value})
            async with gw.client.post(
                "/api/v1/broadcast", data=io.BytesIO(body.encode("utf-8", "surrogatepass")),
                headers=json_headers,
            ) as resp:  # fmt: skip
                await check(resp)
    for raw in (NESTED.encode(), b"\xff\xfe", b"", b"nul\x00", b'"\\ud800"', b"[1]" * 10):
        async with gw.client.post(
            "/api/v1/broadcast", data=io.BytesIO(raw), headers=json_headers
        ) as resp:
            await check(resp)
    for value in values:
        if not isinstance(value, str) or len(value) > 1000:
            continue
        cid = quote(value.encode("utf-8", "surrogatepass"), safe="") or "%20"
        for method, path in (
            ("GET", f"/api/v1/conversations/{cid}/messages"),
            ("POST", f"/api/v1/conversations/{cid}/reset"),
            ("GET", f"/api/v1/generations/{cid}"),
        ):
            async with gw.client.request(method, path, headers=admin, json={}) as resp:
                await check(resp)
        for page in ("/", "/widget"):  # HTML, not JSON: a page or the missing-assistant page
            async with gw.client.get(f"{page}?assistant={cid}&auth={cid}") as resp:
                statuses.append(resp.status)
                assert resp.status in (200, 404)
    return statuses


async def handshake_fuzz(gw, values: list[Any]) -> list[int | None]:
    """The socket's path and query parameters: each handshake connects or closes with 1008."""
    codes: list[int | None] = []
    token = make_token("mallory")
    for name in ("assistant", "conversation_id", "session_type", "token"):
        for value in values:
            if not isinstance(value, str) or len(value) > 1000:
                continue
            raw = quote(value.encode("utf-8", "surrogatepass"), safe="")
            assistant = raw or "%20" if name == "assistant" else "default"
            path = f"/api/v1/assistants/{assistant}/ws?session_type=group"
            if name not in ("assistant", "conversation_id"):
                path += f"&{name}={raw}"
            path += f"&conversation_id={raw if name == 'conversation_id' else 'hs-room'}"
            try:
                async with gw.client.ws_connect(
                    path, headers={"Authorization": f"Bearer {token}"}
                ) as ws:
                    msg = await ws.receive(timeout=15)
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        assert json.loads(msg.data)["type"] == "connected"
                        codes.append(None)
                    else:
                        codes.append(ws.close_code)
            except aiohttp.WSServerHandshakeError as exc:  # no such route: a braced name
                codes.append(exc.status)
    return codes


@pytest.fixture(params=["memory", "redis"])
async def gw(request, gateway, redis_server):
    """A gateway with everything in memory, or on a real Redis."""
    if request.param == "memory":
        return await gateway(CONFIG)
    return await gateway(f'{CONFIG}\n[redis]\nurl = "{redis_server.url}"\nheartbeat_s = 0.2\n')


async def test_hostile_input_everywhere_disturbs_nobody(gw) -> None:
    """No writer dies, no 1011, no 500, nothing left busy, the bystander's text intact."""
    rng = random.Random(SEED)
    values = hostile_values(rng)
    bystander = await gw.chat(token=make_token("bystander"))
    await bystander.send(type="message", id="b-1", text="stay calm sim:tokens=600 sim:delay_ms=10")
    streaming = asyncio.create_task(bystander.reply(timeout=60))

    room = Room(gw)
    observing = await room.open()
    n = 0
    for template, path in frame_targets():
        for value in values:
            n += 1
            await room.send(with_value(template, path, value, n))
    for value in values:  # the frame's type itself, and frames that are not objects
        await room.send(encode({"type": value}))
    for raw in (NESTED, "[]", "null", '"x"', "{", '{"type":"message"' * 1000, "\x00"):
        await room.send(raw)
    await room.send(encode({"type": "disconnect"}))

    statuses = await rest_fuzz(gw, values)
    codes = await handshake_fuzz(gw, values)

    await room.settle()
    assert room.sender is not None
    await room.sender.send(type="message", id="final", text="still here? sim:tokens=5")
    mine = await room.sender.reply()
    assert mine.start["reply_to"] == "final" and mine.end["finish_reason"] == "stop"
    await observing
    assert room.final_text() == mine.text  # the observer's writer survived every frame too

    reply = await streaming
    assert reply.end["finish_reason"] == "stop"
    resp = await gw.client.get(
        f"/api/v1/conversations/{bystander.connected['conversation_id']}/messages",
        headers={"Authorization": f"Bearer {make_token('bystander')}"},
    )
    history = (await resp.json())["messages"]
    assert history[-1]["content"] == reply.text and history[-1]["status"] == "complete"

    assert set(room.closes) <= ALLOWED_CLOSES, room.closes
    assert 1000 in room.closes  # the disconnect frame
    assert all(e["code"] != "internal" for e in room.errors)
    assert {"bad_request", "bad_json", "unknown_type", "message_too_long"} <= {
        e["code"] for e in room.errors
    }
    assert max(statuses) < 500 and 400 in statuses and 202 in statuses
    assert set(codes) <= {None, 1008, 404} and 1008 in codes and None in codes
