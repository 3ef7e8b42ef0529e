"""``GET /api/v1/generations/{message_id}`` and its ``/ws`` watch (contract section 5)."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .. import keys, protocol
from ..auth import (
    ANON_COOKIE,
    SUBPROTOCOL,
    Identity,
    handshake_token,
    identify,
)
from ..errors import Forbidden, GatewayError, NotFound
from ..framing import MaskedSocket
from ..replies import ReplyLog
from ..sign_in import receive_auth_token
from .callers import caller, proxied

WATCH_INTERVAL_S = 1.0


async def _find(request: web.Request, identity: Identity | None = None) -> ReplyLog:
    if identity is None:
        identity = await caller(request)
    message_id = protocol.check_id(request.match_info["message_id"], "the message id")
    reply = await request.app[keys.BACKENDS].replies.find(message_id)
    if reply is None:
        raise NotFound("no such generation, or it has expired")
    if reply.owner != identity.user and not identity.admin:
        raise Forbidden("that generation belongs to someone else")
    return reply


async def _watcher(request: web.Request, ws: web.WebSocketResponse) -> ReplyLog | None:
    """The generation, for a watcher who may see it; None if the client left first.

    The token comes from the conversation socket's sources (contract section 4): the handshake's
    (``Authorization``, ``bearer.<token>`` subprotocol, ``token`` query), else a first
    ``auth`` frame within ``auth.auth_timeout_s``; a trusted proxy's user header
    (``auth.trusted_user_header``) names the caller as on the chat socket. Where auth is not
    required, an anonymous caller whose cookie owns the generation needs no token and is
    answered at once."""
    app = request.app
    auth = app[keys.CONFIG].auth
    anonymous = app[keys.ANONYMOUS]
    token = handshake_token(request.headers, request.query)
    if token is not None:
        return await _find(request, await identify(auth, anonymous, token))
    via_proxy = proxied(request)  # the user a trusted proxy named: no token needed
    if via_proxy is not None:
        return await _find(request, via_proxy)
    anon = None if auth.required else await anonymous.verify(request.cookies.get(ANON_COOKIE))
    if anon is not None:
        message_id = protocol.check_id(request.match_info["message_id"], "the message id")
        reply = await app[keys.BACKENDS].replies.find(message_id)
        if reply is not None and reply.owner == anon.user:
            return reply
    with app[keys.REGISTRY].awaiting_auth():
        token = await receive_auth_token(ws, auth.auth_timeout_s)
    return None if token is None else await _find(request, await identify(auth, anonymous, token))


async def get_generation(request: web.Request) -> web.Response:
    return web.json_response(protocol.reply_status(await _find(request)))


async def watch_generation(request: web.Request) -> web.StreamResponse:
    # gateway.v1 is selected when offered beside bearer.<token>, never the token itself.
    ws = MaskedSocket(compress=False, max_msg_size=4096, protocols=(SUBPROTOCOL,))
    await ws.prepare(request)
    try:
        found = await _watcher(request, ws)
    except GatewayError as exc:
        await ws.close(code=exc.close_code or 1008, message=(exc.reason or exc.code).encode())
        return ws
    if found is None:
        return ws
    reply = found
    sockets = request.app[keys.SOCKETS]
    sockets.add(ws)
    reader = asyncio.create_task(ws.receive())  # notices the client going away
    try:
        while True:
            await ws.send_str(protocol.status_frame(reply))
            if reply.ended:
                break
            ended = asyncio.ensure_future(reply.wait_ended())
            done, _ = await asyncio.wait(
                {ended, reader}, timeout=WATCH_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
            )
            ended.cancel()
            if reader in done:
                return ws
        await ws.close(code=1000, message=b"done")
    finally:
        sockets.discard(ws)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/generations/{message_id}", get_generation)
    app.router.add_get("/api/v1/generations/{message_id}/ws", watch_generation)
