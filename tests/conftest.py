"""Shared fixtures. Async tests run in asyncio debug mode, each under a timeout (pyproject)."""

from __future__ import annotations

import os
import shutil

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
os.environ["PYTHONASYNCIODEBUG"] = "1"  # every event loop of the run starts in debug mode


def need_binary(name: str) -> str:
    """Path of a system binary; skip the test without it, but fail under CI (CI=true)."""
    path = shutil.which(name) or (name if os.path.exists(name) else None)
    if path is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


# --------------------------------------------------------------------------- the gateway

SECRET = "test-secret-that-is-long-enough-for-hs256-and-even-for-hs512!!!!"


def gateway_config(toml: str = "", sim_url: str = "http://127.0.0.1:9", **env: str):
    """A Config for tests: the simulator as a real DashScope upstream over loopback."""
    from gateway import config

    base = f"""
[upstream]
kind = "dashscope"
base_url = "{sim_url}"
api_key = "sk-test-upstream-key"
max_retries = 0
[auth]
jwt_secret = "{SECRET}"
audience = "gateway-tests"
"""
    return config.loads(_merge_toml(base, toml), env)


def _merge_toml(base: str, extra: str) -> str:
    """Tables in ``extra`` extend (and win over) the same tables in ``base``."""
    import tomllib

    merged = tomllib.loads(base)
    for table, body in tomllib.loads(extra).items():
        if isinstance(body, dict):
            merged.setdefault(table, {}).update(body)
        else:
            merged[table] = body
    return _dump_toml(merged)


def _dump_toml(data: dict, prefix: str = "") -> str:
    import json

    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for key, value in tables:
        name = f"{prefix}{key}"
        out += f"[{name}]\n" + _dump_toml(value, f"{name}.")
    return out


def make_token(sub: str = "alice", *, admin: bool = False, ttl: int = 3600, **claims):
    import time

    import jwt

    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + ttl, "aud": "gateway-tests", **claims}
    if admin:
        body["role"] = "admin"
    return jwt.encode(body, SECRET, algorithm="HS256")


class Sim:
    def __init__(self, url: str, state) -> None:
        self.url = url
        self.state = state


@pytest.fixture
async def sim():
    """The Qwen simulator on a free loopback port."""
    from gateway.llm.simulator import SIMULATOR_STATE, start_simulator

    runner, url = await start_simulator("127.0.0.1", 0)
    try:
        yield Sim(url, runner.app[SIMULATOR_STATE])
    finally:
        await runner.cleanup()


class Gateway:
    def __init__(self, client, sim: Sim, config) -> None:
        self.client = client
        self.sim = sim
        self.config = config
        self.app = client.server.app

    async def connect(
        self,
        assistant: str = "default",
        *,
        token: str | None = None,
        headers: dict | None = None,
        **query: str,
    ):
        from tests.chatclient import ChatSocket

        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        ws = await self.client.ws_connect(
            f"/api/v1/assistants/{assistant}/ws", params=query, headers=hdrs, autoping=True
        )
        return ChatSocket(ws)

    async def chat(self, assistant: str = "default", **kw):
        """Connect and read the `connected` frame."""
        sock = await self.connect(assistant, **kw)
        sock.connected = await sock.recv_type("connected")
        return sock


@pytest.fixture
async def gateway(sim, aiohttp_client):
    """A factory: ``await gateway(toml)`` starts the app on a free port against ``sim``."""
    from gateway.app import create_app

    async def make(toml: str = "", **env: str) -> Gateway:
        cfg = gateway_config(toml, sim.url, **env)
        import aiohttp

        # No pool limit: some tests hold hundreds of sockets (aiohttp's default is 100).
        client = await aiohttp_client(create_app(cfg), connector=aiohttp.TCPConnector(limit=0))
        return Gateway(client, sim, cfg)

    return make


async def wait_until(condition, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll a condition on server state that has no event to await (e.g. in another layer)."""
    import asyncio

    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state has no event to await
            await asyncio.sleep(interval)


async def eventually(probe, timeout: float = 10.0, interval: float = 0.05):
    """Await ``probe()`` until it returns something truthy (state in another process)."""
    import asyncio

    async with asyncio.timeout(timeout):
        while not (result := await probe()):  # noqa: ASYNC110 - another process: no event
            await asyncio.sleep(interval)
    return result


class SimProcess:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture
async def sim_process():
    """`python -m gateway fake-upstream` in its own process, on a free port."""
    import asyncio
    import os
    import socket
    import sys

    import aiohttp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "fake-upstream",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):  # until it listens (a subprocess gives no event to await)
                try:
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        yield SimProcess(url)
    finally:
        proc.terminate()
        await proc.wait()


# --------------------------------------------------------------------------- Redis


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real ``redis-server`` on a free loopback port; ``restart`` keeps port and data."""

    def __init__(self, binary: str, workdir: str, password: str = "") -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.proc = None

    async def start(self) -> None:
        import asyncio

        # Append-only with fsync on every write: a restart (the Redis-restart test) keeps state.
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            self.workdir,
            "--protected-mode",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):  # until it answers (a subprocess gives no event to await)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                line = await reader.readline()
                writer.close()
                if line.startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def redis_server(tmp_path):
    """A fresh Redis for one test (skipped without redis-server; failed under CI)."""
    server = RedisServer(need_binary("redis-server"), str(tmp_path))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------- nginx

NGINX_MAIN = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log {tmp}/access.log;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
{http}
}}
"""


def nginx_conf(tmp, http: str) -> str:
    """A whole nginx.conf that runs as this user from ``tmp``, around an ``http {}`` body."""
    return NGINX_MAIN.format(tmp=tmp, http=http)
