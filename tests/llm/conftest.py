"""Helpers for upstream tests: a client pointed at a URL, and reading a whole reply."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import Secret, UpstreamConfig
from gateway.llm.client import HttpUpstream, make_session, make_upstream
from gateway.llm.events import ChatMessage, ChatRequest, UpstreamEvent


@pytest.fixture(autouse=True)
async def _close_the_sdks_session() -> AsyncIterator[None]:
    """The dashscope SDK keeps one aiohttp session per event loop until it is told to close
    it: close it before the test's loop ends, so no unclosed session is left behind."""
    yield
    sdk = sys.modules.get("dashscope")
    if sdk is not None:
        await sdk.close_shared_aio_session()


@contextlib.asynccontextmanager
async def upstream_for(
    url: str, *, thinking_style: str = "dashscope", continuation: str = "", **overrides: Any
) -> AsyncIterator[HttpUpstream]:
    """A real client (own pooled session) for the service at ``url``."""
    config = dataclasses.replace(
        UpstreamConfig(api_key=Secret("sk-test"), max_retries=0, retry_backoff_s=0.01),
        **overrides,
    )
    async with make_session(config) as session:
        upstream = make_upstream(
            config, session, url, thinking_style=thinking_style, continuation=continuation
        )
        assert isinstance(upstream, HttpUpstream)
        yield upstream


def request(prompt: str, **kw: Any) -> ChatRequest:
    return ChatRequest("qwen-plus", (ChatMessage("user", prompt),), **kw)


async def collect(upstream: HttpUpstream, prompt: str, **kw: Any) -> list[UpstreamEvent]:
    return [event async for event in upstream.stream(request(prompt, **kw))]


async def collect_model(upstream: HttpUpstream, model: str, prompt: str) -> list[UpstreamEvent]:
    request = ChatRequest(model, (ChatMessage("user", prompt),))
    return [event async for event in upstream.stream(request)]


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
