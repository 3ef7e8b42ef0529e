"""RFC 6455 section 5.1: a server closes the connection on a frame its client did not mask.
Driven by a raw socket client, which can send what no WebSocket library will."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct

import pytest

from tests.conftest import make_token


def frame(payload: bytes, *, opcode: int = 1, masked: bool = True) -> bytes:
    """One final frame, masked with a random key or not at all."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A WebSocket client over a plain TCP stream: handshake, frames as bytes, frames back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, gw, path: str, headers: dict[str, str], first: bytes = b""):
        reader, writer = await asyncio.open_connection(gw.client.host, gw.client.port)
        try:
            yield await cls._handshake(reader, writer, path, headers, first)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @classmethod
    async def _handshake(cls, reader, writer, path, headers, first) -> RawSocket:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    async def recv(self) -> tuple[int, bytes]:
        """The next frame from the server (servers never mask): opcode and payload."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def close_code(self) -> tuple[int, str]:
        """Skip data frames until the close frame: its code and reason."""
        while True:
            opcode, payload = await asyncio.wait_for(self.recv(), 10)
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


CHAT = "/api/v1/assistants/default/ws"


@pytest.mark.parametrize("size", [10, 300, 70_000], ids=["short", "16-bit", "64-bit"])
async def test_an_unmasked_frame_closes_the_chat_socket_with_1002(gateway, size: int) -> None:
    """After a masked frame that is answered, one unmasked frame (of any length encoding,
    even one over the frame limit) gets close 1002: the gateway reads none of it."""
    gw = await gateway()
    headers = {"Authorization": f"Bearer {make_token('alice')}"}
    async with RawSocket.open(gw, CHAT, headers) as sock:
        opcode, payload = await sock.recv()
        assert opcode == 1 and json.loads(payload)["type"] == "connected"
        sock.writer.write(frame(b'{"type":"ping"}' + b" " * min(size, 1000)))
        opcode, payload = await sock.recv()
        assert json.loads(payload)["type"] == "pong"
        sock.writer.write(frame(b'{"type":"ping"}' + b" " * size, masked=False))
        code, reason = await sock.close_code()
        assert (code, reason) == (1002, "client frames must be masked")


async def test_an_unmasked_frame_glued_to_the_handshake_is_refused_too(gateway) -> None:
    """Bytes sent with the upgrade request, before the 101, are checked like any others."""
    gw = await gateway()
    headers = {"Authorization": f"Bearer {make_token('alice')}"}
    unmasked = frame(b'{"type":"ping"}', masked=False)
    async with RawSocket.open(gw, CHAT, headers, first=unmasked) as sock:
        code, _ = await sock.close_code()
        assert code == 1002


async def test_the_generation_watch_refuses_unmasked_frames(gateway) -> None:
    """The watch socket reads only to notice a close; an unmasked frame still ends it."""
    gw = await gateway()
    token = make_token("alice")
    chat = await gw.chat(token=token)
    await chat.send(type="message", id="c-1", text="hi sim:tokens=400 sim:delay_ms=20")
    start = await chat.recv_type("start")
    path = f"/api/v1/generations/{start['message_id']}/ws"
    async with RawSocket.open(gw, path, {"Authorization": f"Bearer {token}"}) as sock:
        sock.writer.write(frame(b"hello", masked=False))
        code, _ = await sock.close_code()
        assert code == 1002
