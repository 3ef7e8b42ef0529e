"""Playwright driving Debian's Chromium (never a downloaded browser), and real nginx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import free_port, need_binary, nginx_conf

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright turns Chromium's partitioned third-party storage off by default (the
# ThirdPartyStoragePartitioning feature in its --disable-features switch, since
# microsoft/playwright#32701); Chromium ships with it on (docs/page.md, "The widget").
PARTITIONING = "ThirdPartyStoragePartitioning"
SCREENSHOTS = Path(__file__).parents[2] / "artifacts" / "screenshots"


@pytest.fixture
async def browser():
    need_binary(CHROMIUM)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(bypass_csp=True)  # test hooks evaluate strings
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    await context.close()
    assert errors == [], errors  # no script error on any page


SITE = """
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location /chat/ {{
      proxy_pass http://127.0.0.1:{upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;  # with the port: the Origin check compares both
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }}
  }}
"""


@pytest.fixture
async def nginx(tmp_path):
    """Start nginx on a free port; ``await nginx(upstream_port)`` returns its base URL."""
    binary = need_binary("/usr/sbin/nginx")
    procs: list[asyncio.subprocess.Process] = []

    async def start(upstream: int) -> str:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(tmp_path, SITE.format(port=port, upstream=upstream)))
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        for _ in range(200):  # until it listens (a subprocess gives no event to await)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                assert proc.returncode is None, (tmp_path / "error.log").read_text()
                await asyncio.sleep(0.05)
        raise AssertionError("nginx did not start")

    yield start
    for proc in procs:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def partitioned_storage(playwright) -> dict[str, list[str]]:
    """Launch options that give Chromium back its own default, partitioned storage for
    third-party frames: Playwright's --disable-features switch (read from a running
    browser's chrome://version) replaced by the same list without ``PARTITIONING``."""
    probe = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = await probe.new_page()
        await page.goto("chrome://version")
        line = await page.locator("#command_line").inner_text()
    finally:
        await probe.close()
    switch = next(a for a in line.split() if a.startswith("--disable-features="))
    features = [f for f in switch.partition("=")[2].split(",") if f != PARTITIONING]
    return {
        "ignore_default_args": [switch],
        "args": [*ARGS, "--disable-features=" + ",".join(features)],
    }


def shoot(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
