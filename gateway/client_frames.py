"""The client frames of one open chat socket, read in its handler's task.

:func:`receive` is the receive side of a registered connection: it reads the socket,
holds each frame to the size limits, puts a message's streamed images in place
(:mod:`gateway.frame_images`) and answers itself what the session need not see. Reading in
the handler's task keeps aiohttp processing pongs whatever the writer is doing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from . import protocol
from .connection import Connection
from .errors import MessageTooBig, UnsupportedData
from .framing import MaskedSocket
from .images import frame_too_big, with_streamed_images


async def receive(
    ws: web.WebSocketResponse,
    conn: Connection,
    max_frame_bytes: int,
    on_frame: Callable[[protocol.ClientFrame], Awaitable[None]],
) -> None:
    """Hand each client frame ``ws`` receives to ``on_frame``, in order, until the socket
    closes or ``conn`` has a close code (looked at after each frame is handled). Every
    frame in counts as heard. Answered here, never handed on: a WebSocket ping (a pong), a
    binary frame and text that is not a client frame (error frames through ``conn``). Past
    ``max_frame_bytes`` only a message with images is taken: :class:`MessageTooBig`
    otherwise. A coroutine, not an async generator: it is the one frame a socket's receive
    side holds while it waits (docs/performance.md)."""
    async for msg in ws:
        conn.heard()
        if msg.type is WSMsgType.TEXT:
            frame = _parse(ws, conn, msg.data, max_frame_bytes)
            msg = None  # type: ignore[assignment]  # (its text may be megabytes: let it go)
            if frame is not None:
                await on_frame(frame)
        elif msg.type is WSMsgType.BINARY:
            conn.send(protocol.error_frame(UnsupportedData()))
        elif msg.type is WSMsgType.PING:
            await _pong(ws, msg.data)
        if ws.closed or conn.close_code is not None:
            break


async def _pong(ws: web.WebSocketResponse, data: bytes) -> None:
    """Answer a client's ping (aiohttp's autoping is off: it would hide the pongs that
    answer the heartbeat's pings). A control frame, sent whole beside the writer's."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.pong(data)


def _parse(
    ws: web.WebSocketResponse, conn: Connection, data: str, limit: int
) -> protocol.ClientFrame | None:
    """The frame ``data`` holds; None (the sender told why) when it is not one."""
    if frame_too_big(data, limit):
        raise MessageTooBig()
    streamed = ws.claim_images(data) if isinstance(ws, MaskedSocket) else {}
    try:
        frame = protocol.parse_client_frame(data)
    except protocol.FrameError as exc:
        conn.send(protocol.error_frame(exc.error, reply_to=exc.reply_to))
        return None
    if frame_too_big(data, limit, frame):
        raise MessageTooBig()
    if isinstance(frame, protocol.Message) and frame.images:
        frame = with_streamed_images(frame, streamed)
    return frame
