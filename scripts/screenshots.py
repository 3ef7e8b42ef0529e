"""Take the README's screenshots of the page: ``python scripts/screenshots.py``.

Starts the simulator and a gateway (as ``python -m bench page`` does), has two short chats
in headless Chromium (Debian's ``/usr/bin/chromium``), and writes ``docs/page-light.png``
and ``docs/page-dark.png``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402 - after the path is set
from bench.page import ARGS, CHROMIUM  # noqa: E402

PROMPTS = [
    "What does backpressure mean for a chat relay? sim:tokens=40 sim:delay_ms=0",
    "Show me a tiny Python function sim:tokens=60 sim:delay_ms=0",
]


async def shoot(http: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for scheme in ("light", "dark"):
            context = await browser.new_context(
                color_scheme=scheme, viewport={"width": 1100, "height": 720}
            )
            page = await context.new_page()
            await page.goto(http + "/")
            for prompt in PROMPTS:
                await page.wait_for_function(
                    "document.getElementById('status').dataset.state === 'connected'"
                )
                await page.fill("#input", prompt)
                await page.keyboard.press("Enter")
                await page.wait_for_selector('.msg.assistant[data-status="complete"]')
                if prompt is not PROMPTS[-1]:
                    await page.click("#new-chat")
                    await page.wait_for_function("!document.querySelector('.msg')")
            await page.wait_for_timeout(300)  # the sidebar's refresh
            await page.screenshot(path=str(ROOT / "docs" / f"page-{scheme}.png"))
            await context.close()
        await browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = servers.start("simulator", "", Path(tmp))
        gateway = servers.start("gateway", sim.url, Path(tmp))
        try:
            asyncio.run(shoot(gateway.http))
        finally:
            gateway.stop()
            sim.stop()


if __name__ == "__main__":
    main()
