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

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .. import keys
from ..auth import ANON_COOKIE, anonymous_id, new_anonymous_id, origin_allowed
from .chat import set_anonymous_cookie

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates"

# Scripts, styles and sockets from the gateway itself only; nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


_DEFAULT_IMAGE_BYTES = 5 * 1024 * 1024  # contract section 11's default


def _page(
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
        "maxMessageChars": config.limits.max_message_chars,
        "maxImageBytes": getattr(config.limits, "max_image_bytes", _DEFAULT_IMAGE_BYTES),
        "maxImages": getattr(config.limits, "max_images_per_message", 4),
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
    if anonymous_id(request.cookies.get(ANON_COOKIE)) is None:
        set_anonymous_cookie(response, new_anonymous_id(), request)
    return response


async def chat_page(request: web.Request) -> web.Response:
    return _page(request, widget=False)


async def conversation_page(request: web.Request) -> web.Response:
    """``/c/{id}``: the page, opened on that conversation (its history, its running reply)."""
    return _page(request, widget=False, root="../", conversation_id=request.match_info["id"])


async def widget_page(request: web.Request) -> web.Response:
    return _page(request, widget=True)


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
    app.router.add_static("/static/", STATIC, append_version=False)
