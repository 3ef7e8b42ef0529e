"""One conversation socket's life: sign in, join a conversation, dispatch frames, leave.

The handler (:mod:`gateway.handlers.socket`) prepares the socket and calls
:meth:`SocketSession.run`. Refusals happen after the upgrade, as close frames with the
contract's code and reason. Who the caller is, and their token's life, is decided by
:mod:`gateway.sign_in`; the client's frames are read by :mod:`gateway.client_frames`, in
the handler's task, so aiohttp keeps processing pongs whatever the writer (its own task) is
doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from aiohttp import web

from . import client_frames, logs, protocol
from .auth import AnonymousIds, Identity
from .config import Config
from .connection import Connection
from .conversations import Conversation, new_id
from .errors import (
    BadRequest,
    ClientError,
    Forbidden,
    GatewayError,
    InternalError,
    NotAllowed,
    Refusal,
    StoreUnavailable,
)
from .handshake import Handshake
from .pace import DeltaPace
from .registry import Registry
from .send_policy import SendPolicy
from .sign_in import SignIn
from .turns import Turns

log = structlog.get_logger("gateway.session")


class SocketSession:
    """One WebSocket's session, run in its handler's task.

    Contract: :meth:`run` has the caller signed in (:class:`~gateway.sign_in.SignIn`),
    opens or joins the conversation, registers the connection, then hands each client frame
    to :class:`~gateway.turns.Turns` (or answers it itself: ping, auth, disconnect) until
    the socket closes. Client errors come back as error frames; refusals close the socket
    with the contract's code. It returns only once the connection has left its room and the
    registry and its writer task has ended. ``conv`` is the conversation as last read.
    """

    __slots__ = ("config", "conn", "conv", "registry", "sign_in", "turns", "ws")

    def __init__(
        self,
        config: Config,
        turns: Turns,
        registry: Registry,
        ws: web.WebSocketResponse,
        anonymous: AnonymousIds,
    ) -> None:
        self.config = config
        self.turns = turns
        self.registry = registry
        self.ws = ws
        self.sign_in = SignIn(config, anonymous, registry, turns.conversations)
        self.conn: Connection | None = None
        self.conv: Conversation | None = None

    async def run(self, hs: Handshake) -> None:
        try:
            identity = await self.sign_in.identify(hs, self.ws)
            if identity is None:
                return
            await self._open(hs, identity)
            assert self.conn is not None
            limit = self.config.limits.max_frame_bytes
            await client_frames.receive(self.ws, self.conn, limit, self._on_frame)
        except (Refusal, ClientError, StoreUnavailable) as exc:
            await self._refuse(exc)
        except Exception:
            log.exception("session failed")
            await self._refuse(InternalError())
        finally:
            await self._leave()

    # ---------------------------------------------------------------- opening

    async def _open(self, hs: Handshake, identity: Identity) -> None:
        self.registry.check_capacity(identity.user)
        conv = await self._conversation(hs, identity)
        limits = self.config.limits
        now = time.time()
        conn = Connection(
            ws=self.ws,
            connection_id=new_id("c"),
            user=identity.user,
            admin=identity.admin,
            public_user=identity.shown,
            assistant=hs.assistant,
            session_type=hs.session_type,
            conversation_id=conv.id,
            instance=hs.instance,
            address=hs.address if identity.anonymous else None,
            policy=SendPolicy.from_limits(limits),
            pace=DeltaPace.every_ms(hs.frame_interval_ms),
            created_at=now,
            last_active=now,
        )
        self.conn, self.conv = conn, conv
        # connection_id, conversation_id and user on every line this task (and the tasks it
        # starts) logs, read from the connection when a line is emitted.
        logs.bind_connection(conn)
        # The first frame is sent from here, before the connection is registered anywhere
        # a frame could be queued for it: the writer task starts with the next frame.
        try:
            await self.ws.send_str(self._connected_frame())
        except (ConnectionError, RuntimeError):
            return  # the client went away during the handshake: the receive loop sees it
        conn.count_frame_sent()
        self.registry.add(conn)
        self.turns.rooms.join(conv.id, conn)
        self.sign_in.watch(conn)
        if logs.info_enabled():
            log.info("connected", assistant=hs.assistant, session_type=hs.session_type)

    async def _conversation(self, hs: Handshake, identity: Identity) -> Conversation:
        store = self.turns.conversations
        if not hs.conversation_id:
            if hs.session_type == "group":
                raise BadRequest("conversation_id is required for a group session")
            # A new person conversation: its fresh id names nothing yet, so there is nothing
            # to look up (with Redis, one round trip fewer per socket).
            return await store.create(new_id("conv"), identity.user, hs.session_type, hs.assistant)
        conv_id = hs.conversation_id
        conv = await store.get(conv_id)
        if conv is None:
            return await store.create(conv_id, identity.user, hs.session_type, hs.assistant)
        if conv.session_type != hs.session_type or conv.assistant != hs.assistant:
            raise Forbidden("that conversation belongs to another assistant or session type")
        if conv.session_type == "person":
            if conv.owner != identity.user and not identity.admin:
                raise Forbidden("that conversation belongs to someone else")
        else:
            await store.join(conv, identity.user)
        return conv

    def _connected_frame(self) -> str:
        assert self.conn is not None and self.conv is not None
        conn, config = self.conn, self.config
        return protocol.connected_frame(
            connection_id=conn.connection_id,
            conversation_id=self.conv.id,
            assistant=conn.assistant,
            session_type=conn.session_type,
            user=conn.public_user,
            heartbeat_s=config.server.heartbeat_s,
            model=config.assistant_model(conn.assistant),
            offline_demo=config.offline_demo,
            # A reply is streaming: `resume` with last_seq 0 (or the seq held) to watch it.
            running_message_id=self.conv.running,
        )

    # ---------------------------------------------------------------- frames

    async def _on_frame(self, frame: protocol.ClientFrame) -> None:
        assert self.conn is not None and self.conv is not None
        conn, conv = self.conn, self.conv
        reply_to = frame.id if isinstance(frame, protocol.Message) else None
        try:
            if isinstance(frame, _TOUCHES_CONVERSATION):
                self.conv = conv = await self.turns.refresh(conv)  # others may have changed it
            match frame:
                case protocol.Message():
                    await self.turns.message(conn, conv, frame)
                case protocol.Cancel(message_id=message_id):
                    await self.turns.cancel(conv, message_id)
                case protocol.Resume():
                    await self.turns.resume(conn, conv, frame)
                case protocol.Reset():
                    if conv.owner != conn.user and not conn.admin:  # REST's rule
                        raise NotAllowed("only the owner or an admin may reset a conversation")
                    await self.turns.reset(conv)
                case protocol.Regenerate():
                    await self.turns.regenerate(conn, conv)
                case protocol.Edit():
                    await self.turns.edit(conn, conv, frame)
                case protocol.Ping():
                    conn.send(protocol.pong_frame())
                case protocol.Auth(token=token):
                    if await self.sign_in.renew(token, conn, conv):
                        conn.send(self._connected_frame())  # who the client is now
                case protocol.Disconnect():
                    await conn.close_with(code=1000, reason="bye")
        except Refusal:
            raise
        except GatewayError as exc:
            conn.send(protocol.error_frame(exc, reply_to=reply_to))

    # ---------------------------------------------------------------- closing

    async def _refuse(self, error: GatewayError) -> None:
        if self.conn is not None:
            await self.conn.close_with(error)
        elif not self.ws.closed:
            code = error.close_code or 1008
            reason = error.reason or error.message  # a close reason fits 123 bytes
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def _leave(self) -> None:
        self.sign_in.stop()
        conn = self.conn
        if conn is not None:
            conn.detach_all()
            self.turns.rooms.leave(conn.conversation_id, conn)
            self.registry.remove(conn)
            if self.conv is not None and not self.turns.rooms.viewers(self.conv.id):
                # (One left behind while Redis is down expires with redis.history_ttl_s.)
                with contextlib.suppress(StoreUnavailable):
                    await self.turns.conversations.forget_if_empty(self.conv)
        writer = conn.writer if conn is not None else None
        if writer is not None:
            writer.cancel()
            await asyncio.wait({writer})
        if conn is not None and logs.info_enabled():
            log.info(
                "disconnected",
                close_code=conn.close_code or self.ws.close_code,
                frames_sent=conn.frames_sent,
                frames_merged=conn.frames_merged,
            )
        logs.unbind_connection()


_TOUCHES_CONVERSATION = (
    protocol.Message,
    protocol.Cancel,
    protocol.Resume,
    protocol.Reset,
    protocol.Regenerate,
    protocol.Edit,
)
