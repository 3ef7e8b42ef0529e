"""The chat socket's aiohttp ``WebSocketResponse`` and the aiohttp internals it leans on.

Each reliance on a private aiohttp attribute sits behind a function named for what it buys
(the figures: docs/performance.md, "Tweaks behind named functions"), and
tests/test_websocket_internals.py fails when aiohttp changes one of them.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web

from .framing import MaskedSocket

# Attributes aiohttp's WebSocketResponse sets in ``__init__`` and has no class-level
# default for (checked by tests/test_websocket_internals.py).
AIOHTTP_SOCKET_INIT_ATTRS = (
    "_state", "_headers", "_status", "_reason", "_protocols", "_timeout", "_receive_timeout",
    "_autoclose", "_autoping", "_heartbeat", "_pong_heartbeat", "_compress", "_max_msg_size",
    "_writer_limit", "_decode_text",
)  # fmt: skip


def slots_for_aiohttp_socket_attrs() -> tuple[str, ...]:
    """Slots for aiohttp's constructor attributes: with them out of the instance dict, the
    dict stays small enough for CPython to share its keys, so each socket holds a much
    smaller dict (docs/performance.md). A name aiohttp drops only costs its slot; one it
    gives a class default is left to the dict (a slot would shadow the default)."""
    return tuple(
        name
        for name in AIOHTTP_SOCKET_INIT_ATTRS
        if not any(name in vars(cls) for cls in web.WebSocketResponse.__mro__)
    )


def socket_transport(ws: web.WebSocketResponse) -> asyncio.Transport | None:
    """The socket's transport, through aiohttp's request (None once it has let go of it):
    what lets the connection drop a silent peer or abort a close that never flushes."""
    req = ws._req
    return req.transport if req is not None else None


def hold_transport_buffer(ws: web.WebSocketResponse, high: int) -> None:
    """Pause the writer once ``high`` bytes wait in the transport. asyncio's own high-water
    mark ignores aiohttp's ``writer_limit``; held to it, a stalled reader's unsent bytes are
    that plus the frame being written (docs/performance.md)."""
    transport = socket_transport(ws)
    if transport is not None:
        transport.set_write_buffer_limits(high=high)


class GatewaySocket(MaskedSocket):
    """The chat socket: a :class:`~gateway.framing.MaskedSocket` (1002 on an unmasked client
    frame) that closes an oversize frame with 1009 and the contract's reason (aiohttp gives
    none), and keeps aiohttp's constructor attributes in slots."""

    __slots__ = slots_for_aiohttp_socket_attrs()

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            message = b"message too big"
        return await super().close(code=code, message=message, drain=drain)
