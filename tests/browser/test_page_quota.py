"""A daily quota on the page: the budget left today, and a spent quota's time to wait."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.test_page import open_page, say

QUOTA = "[limits]\ntokens_per_user_per_day = 60\n"


@pytest.mark.timeout(90)
async def test_the_budget_goes_down_and_a_spent_quota_says_when_to_write_again(
    gateway, browser
) -> None:
    """With a quota the page shows today's budget, lower after a reply; once spent, a
    message is refused with the time to wait (English and Chinese) and keeps its text."""
    gw = await gateway(QUOTA)
    context = await browser.new_context(locale="en-US", bypass_csp=True)
    page = await context.new_page()
    await open_page(page, gw)
    budget = page.locator("#budget")
    await expect(budget).to_have_text("60 tokens left today")
    await expect(budget).to_have_attribute("title", re.compile(r"0 of 60 tokens used"))
    await say(page, "spend sim:tokens=30 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    await expect(budget).not_to_have_attribute("data-remaining", "60")
    left = int(await budget.get_attribute("data-remaining"))
    assert 0 <= left < 30  # 30 output tokens and the prompt's input
    await say(page, "spend the rest sim:tokens=40 sim:delay_ms=0")  # crossing it finishes
    await expect(page.locator(".msg.assistant")).to_have_count(2)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    await expect(budget).to_have_attribute("data-remaining", "0")
    refused = "one more, please"
    await say(page, refused)
    hint = page.locator("#hint")
    await expect(hint).to_have_text(
        re.compile(r"used today's allowance\. You can write again in (\d+ h )?\d+ min \(at .+\)")
    )
    await expect(page.locator("#input")).to_have_value(refused)
    await expect(page.locator(".msg.user")).to_have_count(2)  # no bubble for the refused one
    assert await page.locator("#error .retry").is_hidden()  # not retryable
    await expect(page.locator("#error details pre")).to_contain_text("quota_exceeded")

    chinese = await browser.new_context(locale="zh-CN", bypass_csp=True)
    await chinese.add_cookies(await context.cookies())  # the same anonymous visitor
    zh = await chinese.new_page()
    await open_page(zh, gw)
    await expect(zh.locator("#budget")).to_have_text("今日剩余 0 个 token")
    await say(zh, refused)
    await expect(zh.locator("#hint")).to_have_text(
        re.compile(r"今天的用量已用完。(\d+ 小时 )?\d+ 分钟后（.+）可以再次发送。")
    )
    await expect(zh.locator("#input")).to_have_value(refused)
    await chinese.close()
    await context.close()


@pytest.mark.timeout(60)
async def test_without_a_quota_no_budget_is_shown(gateway, page) -> None:
    """No quota configured: no budget line, and the page does not ask for one."""
    gw = await gateway()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/quota" in r.url else None)
    await open_page(page, gw)
    await say(page, "no quota sim:tokens=5 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    await expect(page.locator("#budget")).to_be_hidden()
    assert asked == []
