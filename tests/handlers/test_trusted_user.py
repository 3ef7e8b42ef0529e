"""auth.trusted_user_header through a real nginx that signs users in (contract section 15)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import tempfile
from pathlib import Path

import aiohttp
import pytest

from gateway.config import ConfigError
from tests.conftest import free_port, gateway_config, need_binary, nginx_conf

# nginx checks HTTP basic auth (a stand-in for any authenticating proxy) and names the user
# in X-Forwarded-User, replacing whatever the client sent. It connects to the gateway from
# 127.0.0.2, the only trusted proxy; tests talking to the gateway directly come from 127.0.0.1.
SITE = """
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_basic "gateway";
      auth_basic_user_file {users};
      proxy_pass http://127.0.0.1:{upstream};
      proxy_bind 127.0.0.2;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-User $remote_user;
      proxy_read_timeout 3600s;
    }}
  }}
"""

CONFIG = """
[auth]
required = true
trusted_user_header = "X-Forwarded-User"
[server]
trusted_proxies = ["127.0.0.2/32"]
"""


def basic(user: str, password: str) -> dict[str, str]:
    """HTTP basic credentials for nginx."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def users_file() -> Path:
    """nginx's basic-auth users, where its workers (not root) can read them: outside
    pytest's private tmp dir."""
    shared = Path(tempfile.mkdtemp(prefix="gw-users-"))
    shared.chmod(0o755)
    users = shared / "users"
    users.write_text("alice:{PLAIN}secret-a\nanon-x:{PLAIN}secret-x\n")
    users.chmod(0o644)
    return users


@pytest.fixture
async def proxy(tmp_path):
    """``await proxy(upstream_port)``: nginx in front of the gateway; its base URL."""
    binary = need_binary("/usr/sbin/nginx")
    procs: list[asyncio.subprocess.Process] = []
    cleanup: list[Path] = []

    async def start(upstream: int) -> str:
        port = free_port()
        users = users_file()
        cleanup.append(users.parent)
        conf = tmp_path / "nginx.conf"
        site = SITE.format(port=port, upstream=upstream, users=users)
        conf.write_text(nginx_conf(tmp_path, site))
        proc = await asyncio.create_subprocess_exec(
            binary, "-p", str(tmp_path), "-c", str(conf),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
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
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)


async def test_the_proxy_names_the_user_for_rest_the_socket_and_the_page(gateway, proxy) -> None:
    """Signed in at nginx: the socket's user is alice with no token, her conversation is in
    her REST list, her reply's generation watch answers her, and the page knows not to ask
    for a sign-in."""
    gw = await gateway(CONFIG)
    base = await proxy(gw.client.port)
    async with aiohttp.ClientSession(headers=basic("alice", "secret-a")) as http:
        async with http.ws_connect(f"{base}/api/v1/assistants/default/ws") as ws:
            connected = await ws.receive_json(timeout=10)
            assert (connected["type"], connected["user"]) == ("connected", "alice")
            await ws.send_json({"type": "message", "id": "c-1", "text": "hi sim:delay_ms=0"})
            while (frame := await ws.receive_json(timeout=10))["type"] != "done":
                pass
        generation = f"{base}/api/v1/generations/{frame['message_id']}"
        async with http.get(generation) as resp:
            assert resp.status == 200
        async with http.ws_connect(f"{generation}/ws") as watch:
            status = await watch.receive_json(timeout=10)
            assert (status["type"], status["status"]) == ("status", "completed")
        # A header the client forges is replaced by nginx's.
        async with http.get(
            f"{base}/api/v1/conversations", headers={"X-Forwarded-User": "mallory"}
        ) as resp:
            assert resp.status == 200
            assert [c["id"] for c in await resp.json()] == [connected["conversation_id"]]
        async with http.get(f"{base}/") as resp:
            body = await resp.text()
        page = json.loads(re.search(r'id="gw-config">(.*?)</script>', body).group(1))
        assert page["proxyUser"] is True


async def test_the_header_straight_to_the_gateway_changes_nothing(gateway, proxy) -> None:
    """From a peer that is not a trusted proxy the header is not read: 401, and the socket
    still wants a token."""
    gw = await gateway(CONFIG)
    forged = {"X-Forwarded-User": "alice"}
    resp = await gw.client.get("/api/v1/conversations", headers=forged)
    assert resp.status == 401
    page = await (await gw.client.get("/", headers=forged)).text()
    assert '"proxyUser": false' in page
    sock = await gw.connect(headers=forged)
    await sock.send(type="message", id="c-1", text="hi")
    assert await sock.closed() == (1008, "unauthorized")


async def test_a_proxy_may_not_name_an_anonymous_id(gateway, proxy) -> None:
    """A name in the anonymous namespace is refused even from the trusted proxy."""
    gw = await gateway(CONFIG)
    base = await proxy(gw.client.port)
    async with (
        aiohttp.ClientSession(headers=basic("anon-x", "secret-x")) as http,
        http.get(f"{base}/api/v1/conversations") as resp,
    ):
        assert resp.status == 401


def test_the_header_needs_trusted_proxies_and_a_header_name() -> None:
    """Config errors name auth.trusted_user_header."""
    with pytest.raises(ConfigError, match=r"auth\.trusted_user_header: needs server\.trusted"):
        gateway_config('[auth]\ntrusted_user_header = "X-Forwarded-User"\n')
    with pytest.raises(ConfigError, match=r"auth\.trusted_user_header: must be a header name"):
        gateway_config(
            '[auth]\ntrusted_user_header = "X User"\n[server]\ntrusted_proxies = ["10.0.0.0/8"]\n'
        )
