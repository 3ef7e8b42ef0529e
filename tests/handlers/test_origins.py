"""Cross-site request forgery: cookie-carried REST writes need this site's Origin and JSON."""

from __future__ import annotations

from tests.conftest import make_token


async def _victim(gw) -> tuple[str, str]:
    """An anonymous visitor with one finished turn: (cookie header, conversation id)."""
    sock = await gw.chat()
    await sock.ask("keep me sim:tokens=3 sim:delay_ms=0")
    cookie = gw.client.session.cookie_jar.filter_cookies(gw.client.make_url("/"))["gw_anon"]
    gw.client.session.cookie_jar.clear()
    return f"gw_anon={cookie.value}", sock.connected["conversation_id"]


async def _messages(gw, cookie: str, conv: str) -> int:
    resp = await gw.client.get(f"/api/v1/conversations/{conv}/messages", headers={"Cookie": cookie})
    return len((await resp.json())["messages"])


async def test_a_cross_site_form_cannot_reset_with_the_victims_cookie(gateway) -> None:
    """POST .../reset with the cookie from another site (a form, or a script) is 403 and
    nothing is cleared; a form's content type from this site is 400."""
    gw = await gateway()
    cookie, conv = await _victim(gw)
    path = f"/api/v1/conversations/{conv}/reset"
    evil = {"Cookie": cookie, "Origin": "https://evil.example"}
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "application/json"):
        resp = await gw.client.post(path, headers={**evil, "Content-Type": content_type}, data="")
        assert resp.status == 403, content_type
        assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await gw.client.post(path, headers={"Cookie": cookie, "Origin": "null"})
    assert resp.status == 403
    same_site_form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    resp = await gw.client.post(path, headers=same_site_form, data="a=1")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"
    assert await _messages(gw, cookie, conv) == 2


async def test_the_page_and_allowed_sites_may_reset_and_bearer_calls_are_unchecked(
    gateway,
) -> None:
    """Same-site Origin (or none) with JSON: 200; a site in allowed_origins: 200; a bearer
    token from any Origin with any content type: 200."""
    gw = await gateway('[assistants.default]\nallowed_origins = ["https://shop.example"]\n')
    cookie, conv = await _victim(gw)
    path = f"/api/v1/conversations/{conv}/reset"
    host = str(gw.client.make_url("/")).rstrip("/")
    for origin in (host, "https://shop.example", None):
        headers = {"Cookie": cookie, "Content-Type": "application/json"}
        if origin:
            headers["Origin"] = origin
        resp = await gw.client.post(path, headers=headers, data="{}")
        assert resp.status == 200, origin
    bearer = await gw.chat(token=make_token("alice"))
    await bearer.ask("hi sim:tokens=3 sim:delay_ms=0")
    resp = await gw.client.post(
        f"/api/v1/conversations/{bearer.connected['conversation_id']}/reset",
        headers={
            "Authorization": f"Bearer {make_token('alice')}",
            "Origin": "https://evil.example",
        },
    )
    assert resp.status == 200


async def test_every_cookie_write_route_is_checked(gateway) -> None:
    """Every POST route answers 403 to the cookie from another site, before doing anything."""
    gw = await gateway()
    cookie, _ = await _victim(gw)
    writes = [
        r.resource.canonical
        for r in gw.app.router.routes()
        if r.method == "POST" and r.resource is not None
    ]
    assert "/api/v1/anonymous" in writes and "/api/v1/broadcast" in writes
    for path in writes:
        path = path.replace("{conversation_id}", "x").replace("{message_id}", "x")
        resp = await gw.client.post(
            path,
            headers={"Cookie": cookie, "Origin": "https://evil.example"},
            json={"message": "hi"},
        )
        assert resp.status == 403, path
