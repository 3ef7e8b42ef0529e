"""The deploy kit's files say what the issue asks, and Compose accepts the compose file."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.conftest import need_binary
from tests.deploy.conftest import DEPLOY, compose_service

ROOT = DEPLOY.parent


async def test_docker_compose_accepts_the_compose_file() -> None:
    """`docker compose config` (or Debian's docker-compose) validates deploy/compose.yaml."""
    if shutil.which("docker") and (await _run("docker", "compose", "version"))[0] == 0:
        command = ["docker", "compose"]
    else:
        command = [need_binary("docker-compose")]
    code, out = await _run(*command, "-f", str(DEPLOY / "compose.yaml"), "config", "--services")
    assert code == 0, out
    assert sorted(out.split()) == ["gateway1", "gateway2", "nginx", "redis"]


def test_the_compose_file_runs_two_gateways_on_one_redis_behind_nginx() -> None:
    """Both gateways share Redis under their own instance id; nginx mounts deploy/nginx.conf."""
    ids = set()
    for name in ("gateway1", "gateway2"):
        service = compose_service(name)
        assert service["command"][:4] == ["python", "-m", "gateway", "serve"]
        assert service["environment"]["GATEWAY_REDIS__URL"] == "redis://redis:6379/0"
        ids.add(service["environment"]["GATEWAY_SERVER__INSTANCE_ID"])
    assert len(ids) == 2
    nginx = compose_service("nginx")
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]


def test_nginx_conf_upgrades_websockets_without_sticky_sessions() -> None:
    """The map idiom, HTTP/1.1, no buffering, a long read timeout, plain round robin."""
    conf = (DEPLOY / "nginx.conf").read_text()
    for needle in (
        "map $http_upgrade $connection_upgrade",
        "proxy_http_version 1.1",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_set_header Connection $connection_upgrade",
        "proxy_buffering off",
        "proxy_read_timeout 3600s",
        "proxy_set_header Host $http_host",
    ):
        assert needle in conf, needle
    directives = [line.split("#")[0].split() for line in conf.splitlines()]
    used = {words[0] for words in directives if words}
    assert not used & {"ip_hash", "hash", "sticky"}, "no sticky sessions"


def test_the_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    """Two stages, a fixed non-root uid, HEALTHCHECK on /healthz, `python -m gateway`."""
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "USER 10001:10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'CMD ["python", "-m", "gateway"' in text


async def _run(*argv: str) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        return 127, str(exc)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


pytestmark = pytest.mark.timeout(60)
