"""``GET /api/v1/images/{image_id}``: an image a user sent, for those who may read its
conversation (the owner, a group's members, admins); 404 for anyone else.

``POST /api/v1/images?conversation_id=...``: an image's bytes sent before the message that
names it (``"images": [{"id": ...}]``), kept with the conversation at once; an extension the
contract is silent on (docs/protocol.md). Its type and size are said up front
(``Content-Type``, ``Content-Length``) and checked before the body is read; the body is read
piece by piece into the image's one buffer, and its magic numbers checked."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .. import keys, protocol
from ..auth import request_identity
from ..conversations import new_id
from ..errors import BadImage, Forbidden, NotFound, TooManyUploads
from ..images import check_upload, check_uploaded_bytes
from ..stores.images import StoredImage
from .callers import caller


async def get_image(request: web.Request) -> web.Response:
    app = request.app
    identity = await request_identity(
        app[keys.CONFIG].auth, app[keys.ANONYMOUS], request.headers, request.cookies
    )
    image_id = protocol.check_id(request.match_info["image_id"], "the image id")
    backends = app[keys.BACKENDS]
    image = await backends.images.get(image_id)
    conv = None if image is None else await backends.conversations.get(image.conversation_id)
    if image is None or conv is None or not conv.may_view(identity.user, admin=identity.admin):
        raise NotFound("no such image")  # (someone else's: not even whether it exists)
    return web.Response(
        body=image.data,
        content_type=image.media_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


async def upload_image(request: web.Request) -> web.Response:
    app = request.app
    identity = await caller(request)
    cid = protocol.check_id(request.query.get("conversation_id", ""), "conversation_id")
    backends = app[keys.BACKENDS]
    conv = await backends.conversations.get(cid)
    if conv is None:
        raise NotFound("no such conversation")
    if not conv.may_view(identity.user):  # (who may send a message in it: not an admin)
        raise Forbidden("that conversation belongs to someone else")
    assistant = app[keys.CONFIG].assistants.get(conv.assistant)
    if assistant is not None and not assistant.vision:
        raise BadImage("this assistant's model takes no images")
    limits = app[keys.CONFIG].limits
    media_type = check_upload(request.content_type, request.content_length, limits)
    image_id = new_id("i")
    slot = await backends.images.reserve_upload(conv.id, image_id)
    if not slot.granted:  # (before the body is read: a refused upload costs nothing)
        raise TooManyUploads(
            f"{limits.pending_images_cap} images uploaded to this conversation and not yet"
            " sent; send a message naming them, or wait for them to expire",
            retry_after_s=slot.retry_after_s,
        )
    try:
        data = await read_into_one_buffer(request, request.content_length or 0)
        check_uploaded_bytes(data, media_type)
    except BaseException:
        await asyncio.shield(backends.images.release_upload(conv.id, image_id))
        raise
    await backends.images.put_upload(image_id, StoredImage(conv.id, media_type, data))
    return web.json_response(
        {"id": image_id, "media_type": media_type, "bytes": len(data)}, status=201
    )


async def read_into_one_buffer(request: web.Request, length: int) -> bytearray:
    """The body, ``length`` bytes as ``Content-Length`` said, read as it arrives into one
    buffer of that size: the image's only copy (no list of pieces joined at the end)."""
    data = bytearray(length)
    view = memoryview(data)
    at = 0
    try:
        while at < length:
            piece = await request.content.readany()
            if not piece:
                break
            if at + len(piece) > length:
                raise BadImage("the body is longer than its Content-Length")
            view[at : at + len(piece)] = piece
            at += len(piece)
    finally:
        view.release()
    if at != length:
        raise BadImage("the body is shorter than its Content-Length")
    return data


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/images/{image_id}", get_image)
    app.router.add_post("/api/v1/images", upload_image)
