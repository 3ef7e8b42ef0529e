"""The page's image sending (gateway/static/attachments.js): an attached image is uploaded
and named; where the upload fails, it goes as a data: URL in the frame instead."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.test_page import open_page
from tests.browser.test_page_ux import SNIFF, frames_sent

DOT = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@pytest.mark.timeout(60)
async def test_an_image_whose_upload_fails_goes_as_a_data_url(gateway, page) -> None:
    """With POST api/v1/images failing, the message carries the image as a data: URL and the
    gateway takes it (the reply acknowledges it)."""
    gw = await gateway()
    await page.add_init_script(SNIFF)
    await page.route("**/api/v1/images?*", lambda route: route.abort())
    await open_page(page, gw)
    await page.set_input_files(
        "#file", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": DOT}]
    )
    await expect(page.locator("#attachments img")).to_have_count(1)
    await page.fill("#input", "what is this? sim:tokens=5 sim:delay_ms=0")
    await page.keyboard.press("Enter")
    await page.wait_for_function("window.__sent.some(f => f.type === 'message')")
    message = next(f for f in await frames_sent(page) if f["type"] == "message")
    assert message["images"] == [
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAACAAEA4iG8MwAAAABJRU5ErkJggg=="
    ]
    await expect(page.locator(".msg.assistant .body").last).to_contain_text(
        "I see 1 image (image/png, 0.1 KB)"
    )
