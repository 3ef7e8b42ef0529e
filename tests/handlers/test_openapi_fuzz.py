"""schemathesis, from PyPI, fuzzes the live REST API against docs/openapi.yaml."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import SECRET, make_token
from tests.test_server import start_gateway

OPENAPI = Path(__file__).parents[2] / "docs" / "openapi.yaml"


@pytest.mark.timeout(240)
async def test_schemathesis_finds_no_server_error_or_schema_violation(tmp_path) -> None:
    """Every check of schemathesis passes on every REST operation (WebSocket paths excluded:
    no plain GET to them can succeed; the WebSocket tests cover them)."""
    cli = shutil.which("schemathesis") or shutil.which("st")
    assert cli, "schemathesis is a test dependency (pip install -e '.[test]')"
    config = f'[auth]\njwt_secret = "{SECRET}"\naudience = "gateway-tests"\n'
    proc, url, _ = await start_gateway(config, tmp_path, DASHSCOPE_API_KEY="")
    try:
        for token in (make_token("root", admin=True), make_token("alice")):
            run = await asyncio.create_subprocess_exec(
                cli,
                "run",
                str(OPENAPI),
                "--url",
                url,
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--exclude-path-regex",
                "/ws$",
                "--max-examples",
                "40",
                "--generation-deterministic",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(run.communicate(), 200)
            assert run.returncode == 0, out.decode()[-4000:]
    finally:
        proc.terminate()
        await proc.wait()
    assert sys.executable  # the gateway ran under this interpreter
