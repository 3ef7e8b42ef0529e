"""The command line as an operator meets it: each mistake is one line naming what to fix, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` with this tree first on the path."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd or ROOT,
        env={**base, **env},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a refused command: exactly one line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["check-config"],
        ["serve"],
        [],
        ["token", "--sub", "alice"],
        ["chat"],
        ["fake-upstream", "--port", "0"],
    ],
)
def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path, command) -> None:
    """--config naming a missing file stops every subcommand: one line naming the path, exit 2."""
    missing = tmp_path / "missing.toml"
    result = run_cli(*command, "--config", str(missing))
    assert result.returncode == 2
    assert str(missing) in one_line(result)


def test_gateway_config_naming_a_missing_file_is_an_error(tmp_path) -> None:
    """$GATEWAY_CONFIG naming a missing file is the same error as --config."""
    missing = tmp_path / "nope.toml"
    result = run_cli("check-config", GATEWAY_CONFIG=str(missing))
    assert result.returncode == 2
    assert str(missing) in one_line(result)


def test_only_the_default_config_toml_may_be_absent(tmp_path) -> None:
    """With no --config and no ./config.toml, check-config passes on the defaults."""
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("defaults (no file): ok")


def test_algorithm_without_its_key_is_refused_naming_the_key(tmp_path) -> None:
    """HS256 listed beside RS256 with only a public key: check-config names auth.jwt_secret."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = tmp_path / "c.toml"
    path.write_text(f"[auth]\nalgorithms = ['RS256', 'HS256']\njwt_public_key = '''{public}'''\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "auth.jwt_secret" in one_line(result)


def test_token_on_the_shipped_config_names_auth_jwt_secret() -> None:
    """`token` on the shipped config.toml (no secret set) is one line naming auth.jwt_secret."""
    result = run_cli("token", "--sub", "alice", "--config", str(ROOT / "config.toml"))
    assert result.returncode == 2
    assert "auth.jwt_secret" in one_line(result)
    assert result.stdout == ""


def test_shipped_config_shows_where_jwt_secret_goes() -> None:
    """config.toml carries a commented jwt_secret line under [auth], which check-config takes."""
    text = (ROOT / "config.toml").read_text()
    auth = text.split("[auth]", 1)[1].split("\n[", 1)[0]
    assert any(line.lstrip().startswith("# jwt_secret") for line in auth.splitlines())
    assert run_cli("check-config", "--config", str(ROOT / "config.toml")).returncode == 0


def test_a_port_in_use_is_one_line_naming_the_address_and_port_flag(tmp_path) -> None:
    """serve on a port another socket holds: one line naming host:port and --port, exit 2."""
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text("[upstream]\nkind = 'fake'\n")
        result = run_cli("serve", "--config", str(config), "--port", str(port))
    finally:
        held.close()
    assert result.returncode == 2
    line = one_line(result)
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_fake_upstream_on_a_port_in_use_ends_in_one_line_naming_it() -> None:
    """fake-upstream on a held port ends with a line naming host:port and --port, exit 2."""
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_cli("fake-upstream", "--port", str(port))
    finally:
        held.close()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}" in last and "--port" in last
