"""Helpers for upstream tests: a client pointed at a URL, and reading a whole reply."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import Secret, UpstreamConfig
from gateway.llm.client import HttpUpstream, make_session, make_upstream
from gateway.llm.events import ChatMessage, ChatRequest, UpstreamEvent


@contextlib.asynccontextmanager
async def upstream_for(url: str, **overrides: Any) -> AsyncIterator[HttpUpstream]:
    """A real client (own pooled session) for the service at ``url``."""
    config = dataclasses.replace(
        UpstreamConfig(api_key=Secret("sk-test"), max_retries=0, retry_backoff_s=0.01),
        **overrides,
    )
    async with make_session(config) as session:
        upstream = make_upstream(config, session, url)
        assert isinstance(upstream, HttpUpstream)
        yield upstream


def request(prompt: str, **kw: Any) -> ChatRequest:
    return ChatRequest("qwen-plus", (ChatMessage("user", prompt),), **kw)


async def collect(upstream: HttpUpstream, prompt: str, **kw: Any) -> list[UpstreamEvent]:
    return [event async for event in upstream.stream(request(prompt, **kw))]


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


async def sdk_text(
    url: str, *, incremental: bool, result_format: str, prompt: str = "hi"
) -> tuple[str, Any]:
    """What the official dashscope SDK reads from ``url`` (the last cumulative text, or the
    joined deltas), and its last response."""
    import dashscope

    dashscope.base_http_api_url = url + "/api/v1"
    # Unset means the service's default, cumulative. (Given False, SDK 2.x asks for
    # incremental output and re-accumulates it itself.)
    responses = await dashscope.AioGeneration.call(
        model="qwen-plus",
        messages=[{"role": "user", "content": prompt}],
        api_key="sk-test",
        stream=True,
        result_format=result_format,
        incremental_output=incremental or None,
    )
    pieces, last = [], None
    async for last in responses:
        assert last.status_code == 200, last
        out = last.output
        text = out.choices[0].message.content if result_format == "message" else out.text
        pieces.append(text or "")
    return ("".join(pieces) if incremental else pieces[-1]), last
