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


def shoot(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / f"{name}.png")
