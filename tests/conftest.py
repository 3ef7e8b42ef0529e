"""Shared fixtures. Async tests run in asyncio debug mode, each under a timeout (pyproject)."""

from __future__ import annotations

import os
import shutil

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def need_binary(name: str) -> str:
    """Path of a system binary; skip the test without it, but fail under CI (CI=true)."""
    path = shutil.which(name) or (name if os.path.exists(name) else None)
    if path is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _asyncio_debug(request: pytest.FixtureRequest) -> None:
    os.environ.setdefault("PYTHONASYNCIODEBUG", "1")
