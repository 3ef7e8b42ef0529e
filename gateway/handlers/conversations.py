"""Conversations over REST: the caller's list, one conversation's messages, reset, rename
and delete (contract sections 6 and 14)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import keys, protocol
from ..auth import Identity
from ..conversations import Conversation
from ..errors import Forbidden, NotFound, Unprocessable
from ..turn_rules import history_status
from .admin import check_rate
from .callers import caller
from .errors import json_body

MAX_TITLE_CHARS = 200


async def _identity(request: web.Request) -> Identity:
    return await caller(request)


async def _conversation(request: web.Request, identity: Identity) -> Conversation:
    cid = protocol.check_id(request.match_info["conversation_id"], "the conversation id")
    conv = await request.app[keys.BACKENDS].conversations.get(cid)
    if conv is None:
        raise NotFound("no such conversation")
    if not conv.may_view(identity.user, admin=identity.admin):
        raise Forbidden("that conversation belongs to someone else")
    return conv


async def list_conversations(request: web.Request) -> web.Response:
    identity = await _identity(request)
    found = await request.app[keys.BACKENDS].conversations.for_user(identity.user)
    return web.json_response([conv.summary() for conv in found])


async def list_messages(request: web.Request) -> web.Response:
    conv = await _conversation(request, await _identity(request))
    replies = request.app[keys.BACKENDS].replies
    messages = []
    for message in conv.messages:
        body = message.public()
        if message.status == "running":  # the stored text lags; the live log has it all
            live = await replies.find(message.id)
            if live is not None:
                body["content"] = live.text
                if live.reasoning:
                    body["reasoning"] = live.reasoning
                body["status"] = history_status(  # ended, about to be stored
                    live.state, live.finish_reason, live.orphaned, live.cut_at_shutdown
                )
        messages.append(body)
    return web.json_response({"conversation_id": conv.id, "messages": messages})


async def reset_conversation(request: web.Request) -> web.Response:
    identity = await _identity(request)
    await check_rate(request, identity)
    conv = await _conversation(request, identity)
    if conv.owner != identity.user and not identity.admin:
        raise Forbidden("only the owner or an admin may reset a conversation")
    await request.app[keys.TURNS].reset(conv)
    return web.json_response({"conversation_id": conv.id, "status": "cleared"})


async def _owned(request: web.Request, what: str) -> Conversation:
    """The conversation named in the path, if the caller owns it or is an admin."""
    identity = await _identity(request)
    await check_rate(request, identity)
    conv = await _conversation(request, identity)
    if conv.owner != identity.user and not identity.admin:
        raise Forbidden(f"only the owner or an admin may {what} a conversation")
    return conv


async def rename_conversation(request: web.Request) -> web.Response:
    conv = await _owned(request, "rename")
    body: Any = await json_body(request)
    if not isinstance(body, dict):
        raise Unprocessable("the body must be a JSON object")
    unknown = sorted(set(body) - {"title"})
    if unknown:
        raise Unprocessable(f"unknown field {unknown[0][:40]!r}")
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise Unprocessable("field 'title' must be a non-empty string")
    if len(title) > MAX_TITLE_CHARS:
        raise Unprocessable(f"field 'title' is longer than {MAX_TITLE_CHARS} characters")
    await request.app[keys.BACKENDS].conversations.rename(conv, protocol.check_text(title, "title"))
    return web.json_response(conv.summary())


async def delete_conversation(request: web.Request) -> web.Response:
    conv = await _owned(request, "delete")
    await request.app[keys.TURNS].delete(conv)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/conversations", list_conversations)
    app.router.add_get("/api/v1/conversations/{conversation_id}/messages", list_messages)
    app.router.add_post("/api/v1/conversations/{conversation_id}/reset", reset_conversation)
    app.router.add_patch("/api/v1/conversations/{conversation_id}", rename_conversation)
    app.router.add_delete("/api/v1/conversations/{conversation_id}", delete_conversation)
