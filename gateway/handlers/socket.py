"""``GET /api/v1/assistants/{assistant}/ws``: the conversation WebSocket (one session each)."""

from __future__ import annotations

import contextlib

from aiohttp import web

from .. import keys, protocol
from ..auth import ANON_COOKIE, SUBPROTOCOL, Identity, handshake_token
from ..client_address import request_address
from ..errors import RateLimited, StoreUnavailable, Unauthorized
from ..framing import LargeFrames
from ..handshake import Handshake
from ..pace import frame_interval_ms
from ..quotas import AddressLimits
from ..send_policy import SendPolicy
from ..session import SocketSession
from ..websocket import GatewaySocket, hold_transport_buffer
from .callers import proxied


async def open_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[keys.CONFIG]
    limits = config.limits
    policy = SendPolicy.from_limits(limits)
    session_type = request.query.get("session_type", "person")
    ws = GatewaySocket(
        protocols=(SUBPROTOCOL,),
        # The heartbeat is one sweep over all sockets (gateway.heartbeat), not a timer
        # per socket; pongs reach the session, which answers pings itself.
        autoping=False,
        compress=False,  # deltas are small and many; deflate costs more CPU than it saves
        # A message with images may be this big; the session holds every other frame to
        # limits.max_frame_bytes (gateway.images.frame_too_big).
        max_msg_size=limits.max_image_frame_bytes,
        writer_limit=policy.writer_limit,
    )
    ws.read_large_frames(
        LargeFrames(
            above=limits.max_frame_bytes,
            limit=limits.max_image_frame_bytes,
            max_image_bytes=limits.max_image_bytes,
        )
    )
    refusal: Unauthorized | None = None
    try:
        via_proxy = proxied(request)
    except Unauthorized as exc:
        via_proxy, refusal = None, exc
    anon: Identity | None = None
    if not config.auth.required and via_proxy is None and refusal is None:
        # Redis down: the session refuses with 1013 if it needs the anonymous identity.
        with contextlib.suppress(StoreUnavailable):
            anon = await anonymous_caller(request, ws)
    await ws.prepare(request)
    hold_transport_buffer(ws, policy.transport_high_water)
    sockets = app[keys.SOCKETS]
    sockets.add(ws)
    try:
        if refusal is not None:
            await ws.close(code=1008, message=refusal.reason.encode())
            return ws
        if session_type not in ("person", "group"):
            await ws.close(code=1008, message=b"session_type must be person or group")
            return ws
        conversation_id = request.query.get("conversation_id") or None
        if conversation_id is not None and not protocol.valid_id(conversation_id):
            await ws.close(
                code=1008, message=f"conversation_id must be {protocol.ID_RULE}".encode()
            )
            return ws
        try:
            interval_ms = frame_interval_ms(request.query.get("frame_interval_ms"))
        except ValueError as exc:
            await ws.close(code=1008, message=str(exc).encode())
            return ws
        handshake = Handshake(
            assistant=request.match_info["assistant"],
            session_type="group" if session_type == "group" else "person",
            conversation_id=conversation_id,
            origin=request.headers.get("Origin"),
            host=request.headers.get("X-Forwarded-Host", request.host),
            token=handshake_token(request.headers, request.query),
            anonymous=anon,
            instance=app[keys.INSTANCE_ID],
            auth_frame=request.query.get("auth") == "frame",
            proxied=via_proxy,
            address=address_of(request),
            frame_interval_ms=interval_ms,
        )
        session = SocketSession(
            config, app[keys.TURNS], app[keys.REGISTRY], ws, app[keys.ANONYMOUS]
        )
        await session.run(handshake)
    finally:
        sockets.discard(ws)
    return ws


async def anonymous_caller(request: web.Request, response: web.StreamResponse) -> Identity:
    """The anonymous identity of the request's cookie; when it has none, or one this gateway
    did not sign (made up, altered), a fresh identity whose cookie ``response`` sets."""
    anonymous = request.app[keys.ANONYMOUS]
    identity = await anonymous.verify(request.cookies.get(ANON_COOKIE))
    if identity is None:
        await check_new_anonymous_id(request)
        token, identity = await anonymous.issue()
        set_anonymous_cookie(response, token, request)
    return identity


def address_of(request: web.Request) -> str:
    """The request's client address: the peer, or what a trusted proxy says (section 12)."""
    return request_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        request.app[keys.CONFIG].server.trusted_proxies,
    )


async def check_new_anonymous_id(request: web.Request) -> None:
    """Count a new anonymous id for the request's address; past
    ``limits.max_anonymous_ids_per_ip_per_hour``, :class:`RateLimited`."""
    config = request.app[keys.CONFIG]
    limit = config.limits.max_anonymous_ids_per_ip_per_hour
    if not limit:
        return
    limits = AddressLimits.from_config(config, request.app[keys.BACKENDS].windows)
    if not await limits.allow_new_id(address_of(request)):
        raise RateLimited(f"more than {limit} new anonymous ids an hour from your network")


def set_anonymous_cookie(response: web.StreamResponse, anon: str, request: web.Request) -> None:
    """The anonymous credential's cookie, written as a header: it is URL-safe (no quoting),
    and the standard library's cookie objects cost more than the rest of a handshake's
    headers (and stay attached to a socket for its life)."""
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    # The widget's iframe is a third-party context: it needs SameSite=None, hence Secure.
    same_site = "SameSite=None; Secure" if secure else "SameSite=Lax"
    response.headers.add(
        "Set-Cookie",
        f"{ANON_COOKIE}={anon}; Max-Age={ANON_COOKIE_MAX_AGE_S}; Path=/; HttpOnly; {same_site}",
    )


ANON_COOKIE_MAX_AGE_S = 365 * 24 * 3600


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/assistants/{assistant}/ws", open_socket)
