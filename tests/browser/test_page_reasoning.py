"""The page with a reasoning model: the Thinking block from real reasoning frames."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from gateway import keys
from tests.browser.test_page import open_page, say
from tests.test_reasoning import thinking
from tests.test_turns import expected


@pytest.mark.timeout(90)
async def test_a_streamed_reasoning_reply_opens_then_folds_the_thinking_block(
    gateway, page
) -> None:
    """Reasoning from the simulator streams into an open Thinking block, which folds with its
    duration when the answer comes; a drop mid-thought resumes without a repeated character;
    after a reload the history shows the thought folded."""
    gw = await gateway()
    await open_page(page, gw)
    prompt = "ponder sim:reasoning=40 sim:tokens=20 sim:delay_ms=40"
    await say(page, prompt)
    reply = page.locator(".msg.assistant").last
    box = reply.locator("details.thinking")
    await page.wait_for_function("window.gatewayClient.reply?.reasoning.length > 0")
    assert await page.evaluate("window.gatewayClient.reply.text") == ""
    await expect(box).to_have_attribute("open", "")
    await expect(box.locator("summary")).to_have_text("Thinking…")
    await page.wait_for_function("window.gatewayClient.reply.reasoning.length > 40")
    # The network drops mid-thought (the answer has not begun).
    assert (
        await page.evaluate(
            "window.gatewayClient.ws.close(4000) || window.gatewayClient.reply.text"
        )
        == ""
    )
    await expect(reply).to_have_attribute("data-status", "complete", timeout=30000)
    await expect(box).not_to_have_attribute("open", "")
    await expect(box.locator("summary")).to_have_text(re.compile(r"Thought for \d+ s"))
    await expect(box.locator(".thinking-text")).to_have_text(thinking(40))
    assert await page.evaluate("window.gatewayClient.reply.reasoning") == thinking(40)
    assert await page.evaluate("window.gatewayClient.reply.text") == expected(prompt)
    assert gw.app[keys.METRICS].resumes._value.get() == 1
    await page.reload()
    again = page.locator(".msg.assistant").last.locator("details.thinking")
    await expect(again).not_to_have_attribute("open", "")
    await expect(again.locator("summary")).to_have_text("Thinking")
    await expect(again.locator(".thinking-text")).to_have_text(thinking(40))
