"""The embed snippet on other sites: allowed hosts chat through the iframe, others are refused."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from playwright.async_api import expect

from gateway import keys
from tests.browser.conftest import ARGS, CHROMIUM, partitioned_storage, shoot
from tests.conftest import make_token, need_binary, wait_until
from tests.test_turns import expected

HOST_PAGE = """<!doctype html><html><head><title>Shop</title>
<style>* {{ all: unset !important; }} button {{ display: none !important; }} iframe {{ display: none !important; }}</style>
</head><body><h1>A shop</h1>
<script src="{gateway}/embed.js" data-assistant="support" {token} async></script>
</body></html>"""


class HostSite:
    """A small site on its own origin that embeds the gateway's snippet."""

    def __init__(self) -> None:
        self.gateway = ""
        self.token = ""

    async def page(self, request: web.Request) -> web.Response:
        token = f'data-token="{self.token}"' if self.token else ""
        return web.Response(
            text=HOST_PAGE.format(gateway=self.gateway, token=token), content_type="text/html"
        )


@pytest.fixture
async def host_site(aiohttp_server):
    """Start a host site; returns (site, origin)."""

    async def make():
        site = HostSite()
        app = web.Application()
        app.router.add_get("/", site.page)
        server = await aiohttp_server(app)
        return site, f"http://127.0.0.1:{server.port}"

    return make


async def open_widget(page, origin: str):
    await page.goto(origin + "/")
    launcher = page.locator("[data-qwen-gateway] >> css=button.launcher")
    await launcher.click()
    return page.frame_locator("[data-qwen-gateway] >> css=iframe")


@pytest.mark.timeout(90)
async def test_allowed_site_chats_through_the_widget_with_its_users_token(
    gateway, host_site, page, browser
) -> None:
    """On an allowed origin, the launcher opens the iframe; the token arrives by postMessage."""
    site, origin = await host_site()
    gw = await gateway(
        f'[auth]\nrequired = true\n[assistants.support]\ntitle = "Support"\nallowed_origins = ["{origin}"]\n'
    )
    site.gateway = str(gw.client.make_url("")).rstrip("/")
    site.token = make_token("alice")
    frame = await open_widget(page, origin)
    await expect(frame.locator("#status")).to_have_attribute("data-state", "connected")
    prompt = "from the shop sim:tokens=40 sim:delay_ms=5"
    await frame.locator("#input").fill(prompt)
    await frame.locator("#input").press("Enter")
    reply = frame.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "complete", timeout=20000)
    users = [(c.user, c.pace and c.pace.interval) for c in gw.app[keys.REGISTRY]]
    assert users == [("alice", 0.025)]  # the widget asks for the page's pace too
    conv = await gw.app[keys.BACKENDS].conversations.for_user("alice")
    assert conv[0].messages[-1].content == expected(prompt)
    src = await page.locator("[data-qwen-gateway] >> css=iframe").get_attribute("src")
    assert "token" not in src.replace("auth=frame", "")  # never in a URL
    await page.screenshot(path=shoot("widget-light"))
    dark = await browser.new_context(color_scheme="dark", bypass_csp=True)
    dark_page = await dark.new_page()
    frame = await open_widget(dark_page, origin)
    await expect(frame.locator("#status")).to_have_attribute("data-state", "connected")
    await dark_page.screenshot(path=shoot("widget-dark"))
    await dark.close()


@pytest.mark.timeout(90)
async def test_a_site_not_allowed_gets_nothing_added(gateway, host_site, page) -> None:
    """A host not in allowed_origins: embed.js asks the gateway, is told no, adds nothing; the
    widget could not be framed there anyway (CSP), and a direct WebSocket is closed 1008."""
    site, origin = await host_site()
    gw = await gateway('[assistants.support]\nallowed_origins = ["https://shop.example"]\n')
    site.gateway = str(gw.client.make_url("")).rstrip("/")
    async with page.expect_response(lambda r: "embed-check" in r.url) as checked:
        await page.goto(origin + "/")
    assert await (await checked.value).json() == {"allowed": False}
    await page.wait_for_load_state("networkidle")
    assert await page.locator("[data-qwen-gateway]").count() == 0
    assert len(gw.app[keys.REGISTRY]) == 0
    result = await page.evaluate(
        """(url) => new Promise((resolve) => {
             const ws = new WebSocket(url);
             ws.onclose = (e) => resolve([e.code, e.reason]);
           })""",
        str(gw.client.make_url("/api/v1/assistants/support/ws")).replace("http", "ws", 1),
    )
    assert result == [1008, "forbidden"]


@pytest.mark.timeout(60)
async def test_embed_check_answers_from_the_callers_origin(gateway) -> None:
    """GET /api/v1/assistants/{name}/embed-check: allowed for a listed origin, not for
    others or an unknown assistant; any site may read the answer (CORS)."""
    gw = await gateway('[assistants.support]\nallowed_origins = ["http://shop.example"]\n')
    url = "/api/v1/assistants/support/embed-check"
    for origin, allowed in (("http://shop.example", True), ("http://evil.example", False)):
        resp = await gw.client.get(url, headers={"Origin": origin})
        assert resp.status == 200 and await resp.json() == {"allowed": allowed}
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await gw.client.get(
        "/api/v1/assistants/nobody/embed-check", headers={"Origin": "http://shop.example"}
    )
    assert await resp.json() == {"allowed": False}


STORE_KEY = "qwen-gateway:"  # embed.js's fallback key in the host site's storage


@pytest.mark.parametrize("storage", ["partitioned", "refused"])
@pytest.mark.timeout(120)
async def test_widget_on_another_site_without_third_party_cookies_resumes_and_remembers(
    gateway, host_site, storage
) -> None:
    """Host on 127.0.0.1, gateway on localhost (different sites), plain HTTP, third-party
    cookies blocked: a reconnect mid-reply resumes the reply (same anonymous identity), and
    reloading the host page shows the same conversation. With Chromium's partitioned storage
    the identity lives in the iframe's own storage and the host's holds nothing; where the
    browser refuses the frame any storage, embed.js keeps it in the host's storage."""
    site, origin = await host_site()
    gw = await gateway(f'[assistants.support]\nallowed_origins = ["{origin}"]\n')
    site.gateway = f"http://localhost:{gw.client.port}"
    need_binary(CHROMIUM)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        options = await partitioned_storage(p) if storage == "partitioned" else {"args": ARGS}
        options["args"] = [*options["args"], "--test-third-party-cookie-phaseout"]
        browser = await p.chromium.launch(executable_path=CHROMIUM, **options)
        context = await browser.new_context()
        page = await context.new_page()
        frame = await open_widget(page, origin)
        await expect(frame.locator("#status")).to_have_attribute("data-state", "connected")
        widget = next(f for f in page.frames if "/widget" in f.url)
        assert await widget.evaluate("document.hasStorageAccess()") is False  # 3P cookies off
        prompt = "across sites sim:tokens=300 sim:delay_ms=10"
        await frame.locator("#input").fill(prompt)
        await frame.locator("#input").press("Enter")
        reply = frame.locator(".msg.assistant").last
        await expect(reply).to_have_attribute("data-status", "running")
        await wait_until(lambda: len(gw.app[keys.REGISTRY]) == 1)
        conn = next(iter(gw.app[keys.REGISTRY]))
        user = conn.user
        await asyncio.sleep(0.3)  # some text arrives before the drop (no event for "some")
        conn.ws._req.transport.abort()
        await expect(reply).to_have_attribute("data-status", "complete", timeout=30000)
        assert [c.user for c in gw.app[keys.REGISTRY]] == [user]  # the same visitor
        assert await widget.evaluate("window.gatewayClient.reply.text") == expected(prompt)
        assert await frame.locator("#error").is_hidden()
        own = await widget.evaluate(
            """() => { try { return [localStorage.getItem("gw_anon_token"),
                                     localStorage.getItem("gw_widget_conversation:support")]; }
                       catch { return null; } }"""
        )
        hosts = await page.evaluate(
            f"Object.keys(localStorage).filter((k) => k.startsWith({STORE_KEY!r}))"
        )
        if storage == "partitioned":
            assert own is not None and all(own)  # the iframe's own storage holds both
            assert own[1] == conn.conversation_id
            assert hosts == []  # and the host site's holds nothing of the widget's
        else:
            assert own is None  # the browser refused the frame any storage
            assert hosts == [f"{STORE_KEY}{site.gateway}:support"]
        await page.reload()
        frame = await open_widget(page, origin)
        await expect(frame.locator(".msg.user .body")).to_have_text([prompt])
        await expect(frame.locator(".msg.assistant .body")).to_contain_text("You said")
        await expect(frame.locator("#status")).to_have_attribute("data-state", "connected")
        await wait_until(lambda: [c.user for c in gw.app[keys.REGISTRY]] == [user])
        if storage == "partitioned":  # the gateway's own site sees none of it (partitioned)
            await page.goto(site.gateway + "/embed.js")
            assert await page.evaluate("localStorage.length") == 0
        await browser.close()
