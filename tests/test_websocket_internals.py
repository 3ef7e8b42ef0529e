"""The aiohttp internals the chat socket relies on are still there, as gateway/websocket.py uses them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.websocket import (
    AIOHTTP_SOCKET_INIT_ATTRS,
    GatewaySocket,
    hold_transport_buffer,
    slots_for_aiohttp_socket_attrs,
    socket_transport,
)


def test_every_slotted_attribute_is_set_by_the_constructor() -> None:
    """Each name GatewaySocket slots is one aiohttp's constructor sets on the instance."""
    ws = web.WebSocketResponse(heartbeat=10.0)  # a heartbeat: _pong_heartbeat is set too
    missing = [name for name in AIOHTTP_SOCKET_INIT_ATTRS if name not in vars(ws)]
    assert not missing, f"aiohttp's WebSocketResponse no longer sets {missing}"


def test_no_slotted_attribute_has_a_class_default() -> None:
    """None of the names has gained a class-level default (a slot would shadow it)."""
    assert slots_for_aiohttp_socket_attrs() == AIOHTTP_SOCKET_INIT_ATTRS
    assert GatewaySocket.__slots__ == AIOHTTP_SOCKET_INIT_ATTRS


async def test_a_prepared_socket_reaches_its_transport_and_writer_limit(aiohttp_client) -> None:
    """A prepared socket has _req with its transport, and _writer_limit as it was given."""
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = GatewaySocket(writer_limit=20000)
        await ws.prepare(request)
        seen["writer_limit"] = ws._writer_limit
        seen["transport"] = socket_transport(ws)
        hold_transport_buffer(ws, 20000)
        seen["high"] = seen["transport"].get_write_buffer_limits()[1]
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws") as ws:
        await asyncio.wait_for(ws.receive(), 5)
    assert seen["writer_limit"] == 20000
    assert isinstance(seen["transport"], asyncio.Transport)
    assert seen["high"] == 20000


async def test_the_mask_check_hooks_are_there(aiohttp_client) -> None:
    """framing.MaskedSocket's hooks exist: _post_start, and the protocol's parser and tail."""
    seen: dict[str, bool] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        protocol: Any = request.protocol
        seen["tail"] = hasattr(protocol, "_message_tail")
        seen["parser"] = hasattr(protocol, "_payload_parser")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    assert callable(getattr(web.WebSocketResponse, "_post_start", None))
    app = web.Application()
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    async with client.ws_connect("/ws") as ws:
        await asyncio.wait_for(ws.receive(), 5)
    assert seen == {"tail": True, "parser": True}
