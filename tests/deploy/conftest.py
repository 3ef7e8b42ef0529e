"""The deploy kit for real: Redis, two ``python -m gateway serve`` processes, nginx.

The gateways are started with the command and environment that ``deploy/compose.yaml``
gives its services, and nginx with ``deploy/nginx.conf``; only host names, ports and paths
are rewritten for loopback.

``GATEWAY_TEST_REDIS_TLS=1`` runs every test here against a TLS-only Redis (``rediss://``,
a CA and a client certificate made by the test) instead of a plain one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from tests.chatclient import ChatSocket
from tests.conftest import SECRET, RedisServer, free_port, make_token, need_binary, nginx_conf
from tests.stores.redis_processes import TlsRedisServer

DEPLOY = Path(__file__).parents[2] / "deploy"

CONFIG = f"""
[server]
heartbeat_s = 30
shutdown_grace_s = 3
[auth]
jwt_secret = "{SECRET}"
audience = "gateway-tests"
[limits]
orphan_grace_s = 30
[redis]
heartbeat_s = 0.3
[log]
format = "json"
"""


def compose_service(name: str) -> dict[str, Any]:
    """A service of deploy/compose.yaml, with its ``<<`` anchors merged (PyYAML does it)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return dict(compose["services"][name])


async def wait_http(url: str, status: int = 200, timeout: float = 20.0) -> None:
    """Poll until ``url`` answers ``status`` (a subprocess gives no event to await)."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == status:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


@dataclass
class Instance:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    nginx_url: str
    instances: dict[str, Instance]
    http: aiohttp.ClientSession
    redis: Any
    tmp: Path
    redis_env: dict[str, str]
    admin: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {make_token('root', admin=True)}"}
    )

    async def connect(self, token: str, **query: str) -> ChatSocket:
        ws = await self.http.ws_connect(
            f"{self.nginx_url}/api/v1/assistants/default/ws",
            params=query,
            headers={"Authorization": f"Bearer {token}"},
        )
        sock = ChatSocket(ws)
        sock.connected = await sock.recv_type("connected")
        return sock

    async def instance_of(self, sock: ChatSocket) -> str:
        """The instance holding ``sock`` (another instance lists it after its next heartbeat)."""
        async with asyncio.timeout(5):
            while True:
                for conn in await self.connections():
                    if conn["connection_id"] == sock.connected["connection_id"]:
                        return str(conn["instance"])
                await asyncio.sleep(0.1)

    async def connect_to(self, name: str, token: str, **query: str) -> ChatSocket:
        """Through nginx (round robin) until the socket lands on instance ``name``."""
        for _ in range(8):
            sock = await self.connect(token, **query)
            if await self.instance_of(sock) == name:
                return sock
            await sock.ws.close()
        raise AssertionError(f"nginx never sent a socket to {name}")

    async def connect_direct(self, name: str, token: str, **query: str) -> ChatSocket:
        """Straight to instance ``name``, bypassing nginx."""
        ws = await self.http.ws_connect(
            f"{self.instances[name].url}/api/v1/assistants/default/ws",
            params=query,
            headers={"Authorization": f"Bearer {token}"},
        )
        sock = ChatSocket(ws)
        sock.connected = await sock.recv_type("connected")
        return sock

    async def start(self, name: str, instance_id: str) -> Instance:
        """Start (again) the service ``name`` as ``instance_id``, on a new port (nginx keeps
        the old one: reach it with :meth:`connect_direct`)."""
        env = {**self.redis_env, "GATEWAY_SERVER__INSTANCE_ID": instance_id}
        self.instances[name] = await _start_gateway(name, self.tmp, env)
        return self.instances[name]

    def redis_client(self) -> aioredis.Redis:
        """A client of the cluster's Redis (over TLS when it speaks TLS)."""
        certs = getattr(self.redis, "certs", None)
        options = certs.client_options() if certs is not None else {}
        return aioredis.from_url(self.redis.url, decode_responses=True, **options)

    async def connections(self) -> list[dict[str, Any]]:
        async with self.http.get(
            f"{self.nginx_url}/api/v1/connections", headers=self.admin
        ) as resp:
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["connections"])

    async def get_json(self, url: str, token: str) -> Any:
        async with self.http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _start_gateway(name: str, tmp: Path, redis_env: dict[str, str]) -> Instance:
    service = compose_service(name)
    port = free_port()
    command = [str(c) for c in service["command"]]
    assert command[:4] == ["python", "-m", "gateway", "serve"], command
    args = command[4:]
    args[args.index("--config") + 1] = str(tmp / "config.toml")
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DASHSCOPE"))}
    for key, value in service["environment"].items():
        if "${" not in str(value):  # ${DASHSCOPE_API_KEY:-}: unset here, so the simulator
            env[key] = str(value)
    env |= redis_env
    log = tmp / f"{name}.log"
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    instance = Instance(name, port, proc, log)
    await wait_http(instance.url + "/readyz")
    return instance


@pytest.fixture
async def cluster_redis(tmp_path):
    """The cluster's Redis: plain, or TLS-only when ``GATEWAY_TEST_REDIS_TLS=1``."""
    (tmp_path / "redis").mkdir()
    tls = os.environ.get("GATEWAY_TEST_REDIS_TLS") == "1"
    kind = TlsRedisServer if tls else RedisServer
    server = kind(need_binary("redis-server"), str(tmp_path / "redis"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def cluster_upstream_env() -> dict[str, str]:
    """Extra environment for the gateways: none, so they run the offline demo as shipped
    (its simulator caps a visitor's directives); a module overrides it for full-range replies."""
    return {}


@pytest.fixture
async def cluster(tmp_path, cluster_redis, cluster_upstream_env):
    nginx = need_binary("/usr/sbin/nginx")
    (tmp_path / "config.toml").write_text(CONFIG)
    redis_env = {"GATEWAY_REDIS__URL": cluster_redis.url, **cluster_upstream_env}
    certs = getattr(cluster_redis, "certs", None)
    if certs is not None:
        redis_env |= certs.gateway_env()
    instances: dict[str, Instance] = {}
    procs = []
    http = aiohttp.ClientSession()
    try:
        for name in ("gateway1", "gateway2"):
            instances[name] = await _start_gateway(name, tmp_path, redis_env)
        port = free_port()
        site = (DEPLOY / "nginx.conf").read_text()
        for name, inst in instances.items():
            site = site.replace(f"server {name}:8080", f"server 127.0.0.1:{inst.port}")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
        (tmp_path / "site.conf").write_text(site)
        (tmp_path / "nginx.conf").write_text(nginx_conf(tmp_path, f"include {tmp_path}/site.conf;"))
        proc = await asyncio.create_subprocess_exec(
            nginx,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        await wait_http(url + "/healthz")
        cluster = Cluster(url, instances, http, cluster_redis, tmp_path, redis_env)
        yield cluster
    finally:
        await http.close()
        procs += [inst.proc for inst in instances.values()]
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
