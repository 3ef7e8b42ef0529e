"""The chat page in headless Chromium against a live gateway and the simulator."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway import keys
from tests.browser.conftest import shoot
from tests.conftest import make_token
from tests.test_turns import expected

XSS = "<img src=x onerror=window.__pwned=1> <script>window.__pwned=1</script> [x](javascript:window.__pwned=1)"


async def open_page(page, gw, path: str = "/"):
    await page.goto(str(gw.client.make_url(path)))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def say(page, text: str) -> None:
    await page.fill("#input", text)
    await page.keyboard.press("Enter")


@pytest.mark.timeout(90)
async def test_a_reply_streams_in_and_hostile_text_stays_text(gateway, page) -> None:
    """The reply streams into the page, its steps merged at the page's 25 ms pace; <img>,
    <script> and javascript: links run nothing."""
    gw = await gateway()
    await open_page(page, gw)
    prompt = f"Hello {XSS} sim:tokens=80 sim:delay_ms=10"
    await say(page, prompt)
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "running")
    await expect(reply).to_have_attribute("data-status", "complete", timeout=20000)
    raw = await page.evaluate("window.gatewayClient.reply.text")
    assert raw == expected(prompt)
    (conn,) = gw.app[keys.REGISTRY]
    assert conn.pace is not None and conn.pace.interval == 0.025  # frame_interval_ms=25
    assert conn.frames_merged > 0  # 80 steps 10 ms apart: fewer frames than steps
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator(".msg img, .msg script").count() == 0
    assert await page.locator('.msg a[href^="javascript"]').count() == 0
    await expect(page.locator(".msg.user").last).to_contain_text("<img src=x onerror=")
    await expect(reply).to_contain_text("<script>window.__pwned=1</script>")
    await expect(reply.locator("pre code")).to_have_count(1)  # Markdown still renders
    await page.screenshot(path=shoot("page-light"))


@pytest.mark.timeout(90)
async def test_stop_button_ends_a_long_reply(gateway, page) -> None:
    """The stop button cancels; the bubble and the history both say cancelled."""
    gw = await gateway()
    await open_page(page, gw)
    await say(page, "a long one sim:tokens=3000 sim:delay_ms=20")
    await expect(page.locator("#stop")).to_be_visible()
    await page.click("#stop")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#stop")).to_be_hidden()
    record = await gw.sim.state.wait_closed(within=2)
    assert record.outcome == "disconnected" and record.steps_sent < 3000


@pytest.mark.timeout(90)
async def test_server_side_kill_reconnects_and_resumes_the_exact_text(gateway, page) -> None:
    """The socket dies mid-reply: the page shows reconnecting, resumes, ends with the full text."""
    gw = await gateway()
    await open_page(page, gw)
    await page.evaluate(
        "window.__states = []; window.gatewayClient.addEventListener('state', e => window.__states.push(e.detail.state))"
    )
    prompt = "survive this sim:tokens=300 sim:delay_ms=10"
    await say(page, prompt)
    await page.wait_for_function(
        "window.gatewayClient.reply && window.gatewayClient.reply.seq > 20"
    )
    conn = next(iter(gw.app[keys.REGISTRY]))
    conn.ws._req.transport.abort()
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "complete", timeout=30000)
    states = await page.evaluate("window.__states")
    assert "reconnecting" in states and states[-1] == "connected"
    message_id = await page.evaluate("window.gatewayClient.reply.messageId")
    assert (
        await page.evaluate("window.gatewayClient.reply.text")
        == gw.app[keys.BACKENDS].replies.get(message_id).text
    )
    assert await page.evaluate("window.gatewayClient.reply.text") == expected(prompt)
    assert await page.locator(".msg.assistant").count() == 1  # one bubble, not a duplicate


@pytest.mark.timeout(60)
async def test_expired_token_shows_an_error_and_does_not_reconnect(gateway, page) -> None:
    """A 1008 close (expired token) is shown in words, and the page stops there."""
    gw = await gateway("[auth]\nrequired = true\n")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.add_init_script(
        f"localStorage.setItem('gw_token', '{make_token('alice', ttl=-30)}')"
    )
    await page.goto(str(gw.client.make_url("/")))
    await expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    await expect(page.locator("#error")).to_contain_text("sign in")
    await page.wait_for_timeout(2000)  # longer than the first backoffs: no second attempt
    assert len(sockets) == 1
    assert "token" not in sockets[0]  # the token went in the first frame, not the URL


@pytest.mark.timeout(60)
async def test_past_conversations_are_listed_and_reopened(gateway, page) -> None:
    """The sidebar lists conversations; clicking one reloads its messages; new chat starts afresh."""
    gw = await gateway()
    await open_page(page, gw)
    await say(page, "first topic sim:tokens=5 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    first = await page.evaluate("window.gatewayClient.conversationId")
    await page.click("#new-chat")
    await expect(page.locator(".msg")).to_have_count(0)
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator(f'#history button[data-id="{first}"]')).to_be_visible()
    await page.click(f'#history button[data-id="{first}"]')
    await expect(page.locator(".msg.user .body")).to_have_text(
        ["first topic sim:tokens=5 sim:delay_ms=0"]
    )


@pytest.mark.timeout(60)
async def test_dark_scheme_and_phone_width(gateway, browser) -> None:
    """The page follows a dark system scheme and fits a phone-sized screen (screenshots)."""
    gw = await gateway()
    context = await browser.new_context(
        color_scheme="dark", viewport={"width": 390, "height": 760}, bypass_csp=True
    )
    page = await context.new_page()
    await open_page(page, gw)
    await say(page, "dark mode please sim:tokens=40 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 20, 22)"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await page.screenshot(path=shoot("page-dark-phone"))
    await context.close()


@pytest.mark.timeout(90)
async def test_page_works_under_a_prefix_behind_real_nginx(gateway, page, nginx) -> None:
    """Served by nginx under /chat/, the page loads and chats over the proxied WebSocket."""
    gw = await gateway()
    base = await nginx(gw.client.port)
    await page.goto(base + "/chat/")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await say(page, "through nginx sim:tokens=30 sim:delay_ms=5")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    assert await page.evaluate("window.gatewayClient.reply.text") == expected(
        "through nginx sim:tokens=30 sim:delay_ms=5"
    )
