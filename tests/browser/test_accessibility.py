"""axe-core (vendored, test-only) on the page and the widget, in light and dark schemes."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.test_page import open_page, say

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


async def serious_violations(page) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
    )
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


async def contrast(page, selector: str) -> float:
    """WCAG contrast ratio of an element's text against its own background colour."""
    return await page.eval_on_selector(
        selector,
        """(el) => {
          const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
          const lum = ([r, g, b]) => {
            const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          const s = getComputedStyle(el);
          const [a, b] = [lum(rgb(s.color)), lum(rgb(s.backgroundColor))];
          return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        }""",
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_page_has_no_serious_axe_violation_and_controls_reach_4_5_to_1(
    gateway, browser, scheme
) -> None:
    """With a conversation, a running reply and an error shown: no serious or critical axe
    violation; Send and Stop reach 4.5:1 contrast in this scheme."""
    gw = await gateway()
    context = await browser.new_context(color_scheme=scheme, bypass_csp=True)
    page = await context.new_page()
    await open_page(page, gw)
    assert await contrast(page, "#send") >= 4.5
    await say(page, "axe sim:tokens=20 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    await say(page, "fail sim:fault=401")
    await expect(page.locator("#error")).to_be_visible()
    assert await serious_violations(page) == []
    await say(page, "long sim:tokens=2000 sim:delay_ms=20")
    await expect(page.locator("#stop")).to_be_visible()
    assert await contrast(page, "#stop") >= 4.5
    assert await serious_violations(page) == []
    await page.click("#stop")
    await context.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_widget_has_no_serious_axe_violation(gateway, browser, scheme) -> None:
    """The widget page (what the iframe shows) passes axe in both schemes."""
    gw = await gateway()
    context = await browser.new_context(color_scheme=scheme, bypass_csp=True)
    page = await context.new_page()
    await page.goto(str(gw.client.make_url("/widget")))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await say(page, "widget axe sim:tokens=20 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    assert await serious_violations(page) == []
    await context.close()


@pytest.mark.timeout(120)
async def test_phone_drawer_open_has_no_serious_axe_violation(gateway, browser) -> None:
    """The open drawer on a phone-sized dark screen passes axe."""
    gw = await gateway()
    context = await browser.new_context(
        color_scheme="dark", viewport={"width": 390, "height": 760}, bypass_csp=True
    )
    page = await context.new_page()
    await open_page(page, gw)
    await page.click("#menu")
    await expect(page.locator("#sidebar")).to_be_visible()
    assert await serious_violations(page) == []
    await context.close()
