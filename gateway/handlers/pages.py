"""The chat page (``/``), the widget (``/widget``), the embed snippet (``/embed.js``), static files.

Pages are rendered by aiohttp-jinja2 with autoescaping; the page's settings travel as a
JSON data block (``tojson``), never as markup. Every URL in them is relative, so the page
works under a path prefix behind a proxy. ``/widget`` may be framed only by the sites in
the assistant's ``allowed_origins`` (``Content-Security-Policy: frame-ancestors``).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from .. import keys
from ..auth import ANON_COOKIE, anonymous_id, new_anonymous_id
from .chat import set_anonymous_cookie

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates"

# Scripts, styles and sockets from the gateway itself only; nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


def _page(request: web.Request, *, widget: bool) -> web.Response:
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
    if anonymous_id(request.cookies.get(ANON_COOKIE)) is None:
        set_anonymous_cookie(response, new_anonymous_id(), request)
    return response


async def chat_page(request: web.Request) -> web.Response:
    return _page(request, widget=False)


async def widget_page(request: web.Request) -> web.Response:
    return _page(request, widget=True)


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
    app.router.add_static("/static/", STATIC, append_version=False)
