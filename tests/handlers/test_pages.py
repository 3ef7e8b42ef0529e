"""The page, the widget and the snippet over plain HTTP: headers, escaping, cookies."""

from __future__ import annotations

import json
import re


async def test_page_carries_settings_as_json_data_not_markup(gateway) -> None:
    """An assistant title with markup reaches the page escaped, inside a JSON data block."""
    gw = await gateway('[assistants.evil]\ntitle = "</script><img src=x onerror=alert(1)>"\n')
    resp = await gw.client.get("/?assistant=evil")
    html = await resp.text()
    assert resp.status == 200
    assert "<img src=x" not in html
    block = re.search(r'<script type="application/json" id="gw-config">(.*?)</script>', html, re.S)
    assert json.loads(block.group(1))["title"] == "</script><img src=x onerror=alert(1)>"
    assert 'src="static/app.js"' in html  # relative: works under a path prefix


async def test_page_sets_csp_and_the_anonymous_cookie(gateway) -> None:
    """GET / sends a strict CSP (no framing by others) and sets gw_anon."""
    gw = await gateway()
    resp = await gw.client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp
    assert resp.cookies["gw_anon"].value.startswith("gwa1.")  # a signed credential
    assert resp.cookies["gw_anon"]["httponly"]


async def test_widget_may_be_framed_only_by_allowed_origins(gateway) -> None:
    """/widget lists the assistant's allowed_origins in frame-ancestors."""
    gw = await gateway('[assistants.support]\nallowed_origins = ["https://shop.example"]\n')
    resp = await gw.client.get("/widget?assistant=support")
    assert resp.headers["Content-Security-Policy"].endswith(
        "frame-ancestors 'self' https://shop.example"
    )


async def test_unknown_assistant_page_is_404(gateway) -> None:
    """/?assistant=nobody is a readable 404 page."""
    gw = await gateway()
    resp = await gw.client.get("/?assistant=nobody")
    assert resp.status == 404 and "No such assistant" in await resp.text()


async def test_embed_script_and_static_files_are_served(gateway) -> None:
    """/embed.js is JavaScript; the ES modules are under /static/."""
    gw = await gateway()
    resp = await gw.client.get("/embed.js")
    assert resp.status == 200 and resp.content_type == "text/javascript"
    for name in (
        "client.js",
        "render.js",
        "i18n.js",
        "app.js",
        "style.css",
        "vendor/markdown-it/markdown-it.min.js",
        "vendor/dompurify/purify.min.js",
        "vendor/highlight.js/highlight.min.js",
    ):
        assert (await gw.client.get(f"/static/{name}")).status == 200, name


async def test_conversation_url_serves_the_page_with_paths_back_to_the_root(gateway) -> None:
    """/c/{id} is the page opened on that conversation; its static paths climb back with ../
    (relative, so it works under a prefix), and the id travels in the JSON data block."""
    gw = await gateway('[server]\nsign_in_url = "https://login.example/"\n')
    resp = await gw.client.get("/c/conv-abc")
    html = await resp.text()
    assert resp.status == 200
    assert 'src="../static/app.js"' in html and 'href="../static/style.css"' in html
    block = re.search(r'<script type="application/json" id="gw-config">(.*?)</script>', html, re.S)
    page = json.loads(block.group(1))
    assert page["conversationId"] == "conv-abc" and page["root"] == "../"
    assert page["signInUrl"] == "https://login.example/"
    for src in re.findall(r'(?:src|href)="(\.\./static/[^"]+)"', html):
        assert (await gw.client.get("/c/" + src)).status == 200, src  # resolves like a browser


def test_static_code_has_no_html_injection_sinks() -> None:
    """No HTML sink in the front end's own code, and no call into a vendored library's sink:
    highlight.js's element API writes innerHTML, so only hljs.highlight() (a string, which
    goes through DOMPurify with the rest of markdown-it's output) may be used."""
    from pathlib import Path

    static = Path(__file__).parents[2] / "gateway" / "static"
    sinks = (
        "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "srcdoc",
        "createContextualFragment", "DOMParser", "setHTML", "parseHTMLUnsafe",
        "highlightElement", "highlightAll", "highlightBlock", "initHighlighting",
    )  # fmt: skip
    scripts = list(static.glob("*.js"))
    assert scripts
    for path in scripts:
        text = path.read_text()
        for sink in sinks:
            assert sink not in text, f"{path.name} uses {sink}"


def test_markdown_reaches_the_page_only_through_dompurify() -> None:
    """The one place markdown-it's output is used, render.js's renderMarkdown, hands it
    straight to DOMPurify, returning a DocumentFragment (no HTML string to assign)."""
    from pathlib import Path

    static = Path(__file__).parents[2] / "gateway" / "static"
    uses = {p.name: p.read_text().count("md.render(") for p in static.glob("*.js")}
    assert {name: n for name, n in uses.items() if n} == {"render.js": 1}
    render = (static / "render.js").read_text()
    assert "window.DOMPurify.sanitize(md.render(text), PURIFY)" in render
    assert "RETURN_DOM_FRAGMENT: true" in render


async def test_the_anonymous_cookie_is_third_party_capable_only_over_https(gateway) -> None:
    """Plain HTTP: SameSite=Lax. Behind TLS (X-Forwarded-Proto: https): SameSite=None; Secure,
    so the widget's iframe on another site keeps its id. The upgrade sets the same cookie."""
    gw = await gateway()
    plain = (await gw.client.get("/")).headers.getall("Set-Cookie")
    assert len(plain) == 1 and "SameSite=Lax" in plain[0] and "Secure" not in plain[0]
    assert "Max-Age=31536000" in plain[0] and "HttpOnly" in plain[0] and "Path=/" in plain[0]
    gw.client.session.cookie_jar.clear()  # a new visitor each time
    tls = (await gw.client.get("/", headers={"X-Forwarded-Proto": "https"})).headers["Set-Cookie"]
    assert "SameSite=None; Secure" in tls
    gw.client.session.cookie_jar.clear()
    async with gw.client.ws_connect("/api/v1/assistants/default/ws") as ws:
        cookie = ws._response.headers["Set-Cookie"]  # the upgrade's 101 response
        assert cookie.startswith("gw_anon=gwa1.") and "HttpOnly" in cookie
