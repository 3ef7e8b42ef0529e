"""Cross-site request forgery: a write carried by the anonymous cookie must come from a
page the gateway trusts.

A browser attaches the ``gw_anon`` cookie to a request any site makes (``SameSite=None`` for
the widget), so a REST write (POST, PUT, PATCH, DELETE) authenticated by that cookie needs an
``Origin`` the conversation socket would accept (:func:`gateway.auth.origin_allowed`: the gateway's
own host, or a site in some assistant's ``allowed_origins``) and a JSON content type, which a
cross-site form cannot send and a cross-site script can send only after a CORS preflight the
gateway never grants; an image upload (``POST /api/v1/images``) may instead carry the image's
own type (``image/png`` ...), which is not CORS-safelisted either. A ``DELETE`` carries no
body and needs no content type: no form can send one, and a cross-site script can send one
only after such a preflight (``DELETE`` is not a CORS-safelisted method). A bearer token is
never attached by a browser on its own: such calls are not checked.
"""

from __future__ import annotations

from aiohttp import web

from .. import keys
from ..auth import ANON_COOKIE, bearer_token, origin_allowed
from ..errors import BadRequest, Forbidden
from ..images import MEDIA_TYPES
from .errors import Handler

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# JSON, and an image's own type (``POST /api/v1/images``): none is CORS-safelisted.
_CONTENT_TYPES = frozenset({"application/json", *MEDIA_TYPES})


@web.middleware
async def same_site_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method in _WRITES
        and ANON_COOKIE in request.cookies
        and bearer_token(request.headers) is None
    ):
        config = request.app[keys.CONFIG]
        allowed = tuple(o for a in config.assistants.values() for o in a.allowed_origins)
        host = request.headers.get("X-Forwarded-Host", request.host)
        if not origin_allowed(request.headers.get("Origin"), host, allowed):
            raise Forbidden("a write carried by a cookie must come from this site")
        if request.method != "DELETE" and request.content_type not in _CONTENT_TYPES:
            raise BadRequest("a write carried by a cookie must be sent as application/json")
    return await handler(request)
