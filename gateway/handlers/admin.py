"""Admin endpoints: live connections, broadcast; and the public list of assistants."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from .. import keys, protocol
from ..auth import Identity, request_identity
from ..errors import Forbidden, RateLimited, Unprocessable
from ..registry import Registry
from ..stores.events import Event, EventHandler
from .errors import json_body


async def _admin(request: web.Request) -> Identity:
    identity = await request_identity(
        request.app[keys.CONFIG].auth, request.app[keys.ANONYMOUS], request.headers, request.cookies
    )
    if not identity.admin:
        raise Forbidden("admins only")
    return identity


async def check_rate(request: web.Request, identity: Identity) -> None:
    """REST writes share the per-user budget of messages (limits.messages_per_minute)."""
    if not await request.app[keys.BACKENDS].rate_limiter.allow(identity.user):
        raise RateLimited("too many requests; slow down")


async def list_assistants(request: web.Request) -> web.Response:
    config = request.app[keys.CONFIG]
    return web.json_response(
        [
            {"name": name, "title": a.title, "greeting": a.greeting}
            for name, a in sorted(config.assistants.items())
        ]
    )


async def list_connections(request: web.Request) -> web.Response:
    await _admin(request)
    connections = await request.app[keys.BACKENDS].presence.connections()  # every instance
    return web.json_response(
        {
            "total_connections": len(connections),
            "by_assistant": dict(Counter(c["assistant"] for c in connections)),
            "by_session_type": dict(Counter(c["session_type"] for c in connections)),
            "connections": connections,
        }
    )


_BROADCAST_FIELDS = {"message", "assistant", "conversation_id", "user"}


async def broadcast(request: web.Request) -> web.Response:
    await check_rate(request, await _admin(request))
    body: Any = await json_body(request)
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    unknown = sorted(set(body) - _BROADCAST_FIELDS)
    if unknown:
        raise Unprocessable(f"unknown field {unknown[0]!r}")
    text = body.get("message")
    if not isinstance(text, str) or not text:
        raise Unprocessable("field 'message' must be a non-empty string")
    protocol.check_text(text, "message")
    filters = {k: body[k] for k in ("assistant", "conversation_id", "user") if k in body}
    for name, value in filters.items():
        if not isinstance(value, str):
            raise Unprocessable(f"field {name!r} must be a string")
        protocol.check_text(value, name)
    if "conversation_id" in filters:
        protocol.check_id(filters["conversation_id"], "field 'conversation_id'")
    frame = protocol.broadcast_frame(text)
    delivered = deliver_broadcast(request.app[keys.REGISTRY], frame, filters)
    await request.app[keys.BACKENDS].bus.publish("broadcast", frame=frame, filters=filters)
    # ``delivered`` counts this instance's sockets; the other instances deliver on their own.
    return web.json_response({"status": "accepted", "delivered": delivered}, status=202)


_FILTERED = {"user": "public_user"}


def deliver_broadcast(registry: Registry, frame: str, filters: dict[str, str]) -> int:
    delivered = 0
    for conn in registry:
        # "user": the id the connections list shows (an anonymous user's public id)
        if all(getattr(conn, _FILTERED.get(k, k)) == v for k, v in filters.items()):
            conn.send(frame)
            delivered += 1
    return delivered


def on_broadcast_event(registry: Registry) -> EventHandler:
    async def handle(event: Event) -> None:
        filters = event.get("filters") or {}
        if isinstance(filters, dict) and set(filters) <= _BROADCAST_FIELDS - {"message"}:
            deliver_broadcast(registry, str(event["frame"]), filters)

    return handle


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/assistants", list_assistants)
    app.router.add_get("/api/v1/connections", list_connections)
    app.router.add_post("/api/v1/broadcast", broadcast)
