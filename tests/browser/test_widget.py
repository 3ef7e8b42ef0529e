"""The embed snippet on other sites: allowed hosts chat through the iframe, others are refused."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import expect

from gateway import keys
from tests.browser.conftest import shoot
from tests.conftest import make_token
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
    users = [c.user for c in gw.app[keys.REGISTRY]]
    assert users == ["alice"]
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
async def test_a_site_not_allowed_is_refused(gateway, host_site, page) -> None:
    """A host not in allowed_origins: the browser refuses to frame the widget (CSP
    frame-ancestors) and a direct WebSocket from that origin is closed 1008 forbidden."""
    site, origin = await host_site()
    gw = await gateway('[assistants.support]\nallowed_origins = ["https://shop.example"]\n')
    site.gateway = str(gw.client.make_url("")).rstrip("/")
    frame = await open_widget(page, origin)
    await page.wait_for_timeout(1000)  # give a blocked frame the time a loaded one needs
    assert await frame.locator("#input").count() == 0
    assert len(gw.app[keys.REGISTRY]) == 0
    result = await page.evaluate(
        """(url) => new Promise((resolve) => {
             const ws = new WebSocket(url);
             ws.onclose = (e) => resolve([e.code, e.reason]);
           })""",
        str(gw.client.make_url("/api/v1/assistants/support/ws")).replace("http", "ws", 1),
    )
    assert result == [1008, "forbidden"]
