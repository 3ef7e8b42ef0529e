"""A test-side chat client that checks the contract's reply guarantees on every reply."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RECV_TIMEOUT = 15.0


@dataclass
class Reply:
    start: dict[str, Any]
    deltas: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    reasoning_frames: list[dict[str, Any]] = field(default_factory=list)
    pieces: list[dict[str, Any]] = field(default_factory=list)  # both kinds, as received

    @property
    def text(self) -> str:
        return "".join(d["text"] for d in self.deltas)

    @property
    def reasoning(self) -> str:
        return "".join(r["text"] for r in self.reasoning_frames)

    @property
    def message_id(self) -> str:
        return str(self.start["message_id"])


def check_reply(reply: Reply, *, after_seq: int = 0) -> None:
    """Contract sections 4 and 11: seq strictly increasing over delta and reasoning frames,
    no empty text, done matches the texts."""
    last = after_seq
    for delta in reply.pieces or reply.deltas:
        assert delta["message_id"] == reply.message_id
        assert delta["text"], "a delta never carries empty text"
        assert delta["seq"] > last, f"seq went from {last} to {delta['seq']}"
        last = delta["seq"]
    if reply.end["type"] == "done":
        assert reply.end["seq"] == last, "done.seq equals the last delta's seq"
        if after_seq == 0:
            assert reply.end["content_length"] == len(reply.text)
            assert reply.end["reasoning_length"] == len(reply.reasoning)
    else:
        assert reply.end["type"] == "error" and reply.end["message_id"] == reply.message_id


class ChatSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.connected: dict[str, Any] = {}
        self.others: list[dict[str, Any]] = []  # frames skipped while waiting for others

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(
                f"expected a text frame, got {msg.type} {msg.data!r} {msg.extra!r}"
            )
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def recv_type(self, *types: str, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        while True:
            frame = await self.recv(timeout)
            if frame["type"] in types:
                return frame
            self.others.append(frame)

    async def reply(self, *, after_seq: int = 0, timeout: float = RECV_TIMEOUT) -> Reply:
        """Collect one reply, start to done/error, and check its guarantees."""
        start = await self.recv_type("start", timeout=timeout)
        reply = Reply(start)
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == "delta" and frame["message_id"] == reply.message_id:
                reply.deltas.append(frame)
                reply.pieces.append(frame)
            elif frame["type"] == "reasoning" and frame["message_id"] == reply.message_id:
                reply.reasoning_frames.append(frame)
                reply.pieces.append(frame)
            elif frame["type"] in ("done", "error") and frame.get("message_id") == reply.message_id:
                reply.end = frame
                check_reply(reply, after_seq=after_seq)
                return reply
            else:
                self.others.append(frame)

    async def ask(self, text: str, msg_id: str = "c-1", **extra: Any) -> Reply:
        await self.send(type="message", id=msg_id, text=text, **extra)
        return await self.reply()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a lost network)."""
        self.ws._conn.transport.abort()  # type: ignore[union-attr]

    async def closed(self, timeout: float = RECV_TIMEOUT) -> tuple[int | None, str]:
        """Read until the close frame; return (code, reason)."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                return self.ws.close_code, str(msg.extra or "")
            if msg.type is aiohttp.WSMsgType.ERROR:
                return self.ws.close_code, str(msg.data)
            self.others.append(json.loads(msg.data))
