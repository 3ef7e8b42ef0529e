"""``GET /api/v1/images/{image_id}``: an image a user sent, for those who may read its
conversation (the owner, a group's members, admins); 404 for anyone else."""

from __future__ import annotations

from aiohttp import web

from .. import keys, protocol
from ..auth import request_identity
from ..errors import NotFound


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


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/images/{image_id}", get_image)
