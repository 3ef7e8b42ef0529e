"""Who is at the other end of one chat socket, from its handshake to its end.

The session (:mod:`gateway.session`) asks :class:`SignIn` who the caller is before it opens
the conversation, hands it every ``auth`` frame after, and stops it when the socket goes.
:func:`receive_auth_token` reads a first ``auth`` frame (contract section 4); the
generations socket uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from . import protocol
from .auth import AnonymousIds, Identity, identify, origin_allowed
from .config import Config
from .connection import Connection
from .conversations import Conversation
from .errors import (
    Forbidden,
    MessageTooBig,
    NotAllowed,
    StoreUnavailable,
    TokenExpired,
    Unauthorized,
    UnknownAssistant,
)
from .framing import MaskedSocket
from .handshake import Handshake
from .images import frame_too_big
from .registry import Registry
from .stores.conversations import ConversationStore

TOKEN_WARNING_S = 60.0


@dataclass(eq=False, slots=True)
class SignIn:
    """The identity of one socket's caller, and its token's life.

    Contract: :meth:`identify` checks the assistant and the Origin, then names the caller
    from the handshake's token, a trusted proxy's user header, the anonymous cookie or a
    first ``auth`` frame (the socket counts against capacity while it waits for one); None:
    the client went away first; a refusal raises. :meth:`watch` sends ``token_expiring``
    :data:`TOKEN_WARNING_S` before the token expires and closes the connection with
    :class:`TokenExpired` when it does. :meth:`renew` takes a fresh token on the live
    connection: it changes who the caller is, never who owns or belongs to the conversation.
    :meth:`stop` ends the watch. ``identity`` is the caller now (None before
    :meth:`identify` named one)."""

    config: Config
    anonymous: AnonymousIds
    registry: Registry
    conversations: ConversationStore
    identity: Identity | None = None
    _token_watch: asyncio.Task[None] | None = None

    async def identify(self, hs: Handshake, ws: web.WebSocketResponse) -> Identity | None:
        """The caller the handshake (or the socket's first frame) names; None: it left."""
        self.identity = await self._identify(hs, ws)
        return self.identity

    async def _identify(self, hs: Handshake, ws: web.WebSocketResponse) -> Identity | None:
        auth = self.config.auth
        if hs.assistant not in self.config.assistants:
            raise UnknownAssistant()
        allowed = self.config.assistants[hs.assistant].allowed_origins
        if not origin_allowed(hs.origin, hs.host, allowed):
            raise Forbidden("this site may not use this assistant")
        if hs.token is not None:
            return await identify(auth, self.anonymous, hs.token)
        if hs.proxied is not None and not hs.auth_frame:
            return hs.proxied
        if not auth.required and not hs.auth_frame:
            if hs.anonymous is None:
                raise StoreUnavailable()
            return hs.anonymous
        # The page and the widget send {"type":"auth"} first; only ping is answered before it.
        with self.registry.awaiting_auth():
            token = await receive_auth_token(
                ws, auth.auth_timeout_s, self.config.limits.max_frame_bytes
            )
        return None if token is None else await identify(auth, self.anonymous, token)

    async def renew(self, token: str, conn: Connection, conv: Conversation) -> bool:
        """A fresh token on ``conn``; True if it names another user (the session tells the
        client so). A new user stays in the conversation only where a new connection of
        theirs could (a room joins them; someone else's person conversation refuses)."""
        assert self.identity is not None
        identity = await identify(self.config.auth, self.anonymous, token)
        switched = identity.user != self.identity.user
        if switched:
            if conv.session_type == "group":
                await self.conversations.join(conv, identity.user)
            elif conv.owner != identity.user and not identity.admin:
                raise NotAllowed("the token is for another user; reconnect to switch users")
            self.registry.rename(conn, identity.user)  # the logs' user follows conn.user
            conn.public_user = identity.shown
        self.identity = identity
        conn.admin = identity.admin
        self.watch(conn)
        return switched

    def watch(self, conn: Connection) -> None:
        """Warn ``conn`` before the current token expires and close it when it does (a
        token without an expiry: nothing); a previous watch ends."""
        self.stop()
        if self.identity is not None and self.identity.expires_at is not None:
            self._token_watch = asyncio.create_task(_token_deadline(conn, self.identity.expires_at))

    def stop(self) -> None:
        if self._token_watch is not None:
            self._token_watch.cancel()


async def _token_deadline(conn: Connection, expires_at: float) -> None:
    warn_in = expires_at - TOKEN_WARNING_S - time.time()
    if warn_in > 0:
        await asyncio.sleep(warn_in)
    conn.send(protocol.token_expiring_frame())
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    await conn.close_with(TokenExpired())


async def receive_auth_token(
    ws: web.WebSocketResponse, timeout_s: float, max_frame_bytes: int = 64 * 1024
) -> str | None:
    """The token of the socket's first frame, which must be ``auth`` and come within
    ``timeout_s`` (contract section 4); pings, WebSocket or JSON, are answered meanwhile.
    None: the client went away. Anything else raises :class:`Unauthorized`."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unauthorized("no token within the auth deadline")
        try:
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            raise Unauthorized("no token within the auth deadline") from None
        if msg.type in _CLOSED:
            return None
        if msg.type is WSMsgType.PING:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.pong(msg.data)
            continue
        if msg.type is WSMsgType.PONG:
            continue
        if msg.type is not WSMsgType.TEXT:
            raise Unauthorized("send an auth frame first")
        if frame_too_big(msg.data, max_frame_bytes, protocol.Ping()):  # (no images before auth)
            raise MessageTooBig()
        if isinstance(ws, MaskedSocket) and ws.claim_images(msg.data):  # (one had images)
            raise MessageTooBig()
        try:
            frame = protocol.parse_client_frame(msg.data)
        except protocol.FrameError:
            raise Unauthorized("send an auth frame first") from None
        if isinstance(frame, protocol.Ping):
            await ws.send_str(protocol.pong_frame())
            continue
        if isinstance(frame, protocol.Auth):
            return frame.token
        raise Unauthorized("send an auth frame first")


_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
