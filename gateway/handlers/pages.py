"""The chat page (``/``, ``/c/{id}``), the widget (``/widget``), the embed snippet
(``/embed.js``) and its origin check, static files.

Pages are rendered by aiohttp-jinja2 with autoescaping; the page's settings travel as a
JSON data block (``tojson``), never as markup. Every URL in them is relative (``/c/{id}``
pages reach the rest through ``../``), so the page works under a path prefix behind a
proxy. ``/widget`` may be framed only by the sites in the assistant's ``allowed_origins``
(``Content-Security-Policy: frame-ancestors``), and ``embed.js`` asks
``/api/v1/assistants/{name}/embed-check`` first, so it adds nothing to a site that is not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .. import keys
from ..auth import origin_allowed, request_identity
from ..errors import Forbidden, StoreUnavailable, Unauthorized
from ..quotas import QuotaLimits
from .callers import proxied
from .socket import anonymous_caller, check_new_anonymous_id

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates"

# Scripts, styles and sockets from the gateway itself only; nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


_DEFAULT_IMAGE_BYTES = 5 * 1024 * 1024  # contract section 11's default


async def _page(
    request: web.Request, *, widget: bool, root: str = "", conversation_id: str = ""
) -> web.Response:
    config = request.app[keys.CONFIG]
    name = request.query.get("assistant", "default")
    assistant = config.assistants.get(name)
    if assistant is None:
        response = aiohttp_jinja2.render_template(
            "missing.html", request, {"name": name, "root": root}
        )
        response.set_status(404)
        return response
    page = {
        "assistant": name,
        "title": assistant.title,
        "greeting": assistant.greeting,
        "widget": widget,
        "expectToken": widget and request.query.get("auth") == "frame",
        "root": root,  # the page's way back to the gateway's root, relative
        "conversationId": conversation_id,
        "authRequired": config.auth.required,
        "signInUrl": config.server.sign_in_url,
        "proxyUser": _proxied(request),  # signed in by a trusted proxy: no token needed
        "maxMessageChars": config.limits.max_message_chars,
        "maxImageBytes": getattr(config.limits, "max_image_bytes", _DEFAULT_IMAGE_BYTES),
        "maxImages": getattr(config.limits, "max_images_per_message", 4),
        "quota": QuotaLimits.for_assistant(config, name).any,  # show the day's budget
    }
    context = {"page": page, "root": root}
    response = aiohttp_jinja2.render_template("chat.html", request, context)
    if widget:
        allowed = assistant.allowed_origins
        ancestors = "*" if "*" in allowed else " ".join(("'self'", *allowed))
    else:
        ancestors = "'self'"
    response.headers["Content-Security-Policy"] = f"{_CSP}; frame-ancestors {ancestors}"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    if not config.auth.required:
        # Redis down: the page still loads; the socket's upgrade sets the cookie later.
        with contextlib.suppress(StoreUnavailable):
            await anonymous_caller(request, response)
    return response


def _proxied(request: web.Request) -> bool:
    try:
        return proxied(request) is not None
    except Unauthorized:
        return False


async def chat_page(request: web.Request) -> web.Response:
    return await _page(request, widget=False)


async def conversation_page(request: web.Request) -> web.Response:
    """``/c/{id}``: the page, opened on that conversation (its history, its running reply)."""
    return await _page(request, widget=False, root="../", conversation_id=request.match_info["id"])


async def widget_page(request: web.Request) -> web.Response:
    return await _page(request, widget=True)


async def anonymous_token(request: web.Request) -> web.Response:
    """``POST /api/v1/anonymous``: an anonymous credential for a page or an iframe that cannot
    keep a cookie (the widget on another site), to send in its first ``auth`` frame. The
    caller's own when it already has one (cookie or bearer), else a fresh one."""
    config = request.app[keys.CONFIG]
    if config.auth.required:
        raise Forbidden("this gateway does not accept anonymous users")
    anonymous = request.app[keys.ANONYMOUS]
    try:
        identity = await request_identity(config.auth, anonymous, request.headers, request.cookies)
    except Unauthorized:
        identity = None
    if identity is None or not identity.anonymous:
        await check_new_anonymous_id(request)
        token, identity = await anonymous.issue()
    else:
        token = await anonymous.token_for(identity)
    return web.json_response(
        {"token": token, "user": identity.shown}, headers={"Cache-Control": "no-store"}
    )


async def embed_check(request: web.Request) -> web.Response:
    """``{"allowed": bool}``: may the calling site (its ``Origin``) embed this assistant?"""
    config = request.app[keys.CONFIG]
    assistant = config.assistants.get(request.match_info["assistant"])
    origin = request.headers.get("Origin")
    allowed = assistant is not None and origin_allowed(
        origin, request.host, assistant.allowed_origins
    )
    # Any site may ask; the answer says nothing but yes or no.
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store", "Vary": "Origin"}
    return web.json_response({"allowed": allowed}, headers=headers)


async def embed_script(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC / "embed.js",
        headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "max-age=300"},
    )


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape()
    )
    app.router.add_get("/", chat_page)
    app.router.add_get("/c/{id}", conversation_page)
    app.router.add_get("/api/v1/assistants/{assistant}/embed-check", embed_check)
    app.router.add_get("/widget", widget_page)
    app.router.add_get("/embed.js", embed_script)
    app.router.add_post("/api/v1/anonymous", anonymous_token)
    app.router.add_static("/static/", STATIC, append_version=False)
