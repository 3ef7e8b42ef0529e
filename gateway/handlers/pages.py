"""The chat page (``/``), the widget (``/widget``), the embed snippet (``/embed.js``), static files.

Pages are rendered by aiohttp-jinja2 with autoescaping; the page's settings travel as a
JSON data block (``tojson``), never as markup. Every URL in them is relative, so the page
works under a path prefix behind a proxy. ``/widget`` may be framed only by the sites in
the assistant's ``allowed_origins`` (``Content-Security-Policy: frame-ancestors``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .. import keys
from ..auth import request_identity
from ..errors import Forbidden, StoreUnavailable, Unauthorized
from .socket import anonymous_caller

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates"

# Scripts, styles and sockets from the gateway itself only; nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


async def _page(request: web.Request, *, widget: bool) -> web.Response:
    config = request.app[keys.CONFIG]
    name = request.query.get("assistant", "default")
    assistant = config.assistants.get(name)
    if assistant is None:
        response = aiohttp_jinja2.render_template("missing.html", request, {"name": name})
        response.set_status(404)
        return response
    page = {
        "assistant": name,
        "title": assistant.title,
        "greeting": assistant.greeting,
        "widget": widget,
        "expectToken": widget and request.query.get("auth") == "frame",
    }
    response = aiohttp_jinja2.render_template("chat.html", request, {"page": page})
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


async def chat_page(request: web.Request) -> web.Response:
    return await _page(request, widget=False)


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
        token, identity = await anonymous.issue()
    else:
        token = await anonymous.token_for(identity)
    return web.json_response(
        {"token": token, "user": identity.shown}, headers={"Cache-Control": "no-store"}
    )


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
    app.router.add_get("/widget", widget_page)
    app.router.add_get("/embed.js", embed_script)
    app.router.add_post("/api/v1/anonymous", anonymous_token)
    app.router.add_static("/static/", STATIC, append_version=False)
