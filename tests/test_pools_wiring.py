"""Upstream pools through the gateway: failover before the first step, cooldown in /readyz,
upstream_auth not failing over, and a reply continued after a mid-stream drop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway import keys
from gateway.llm.simulator import parse_options, reply_text
from tests.conftest import make_token

ALICE = make_token("alice")
PROMPT = "pools 你好 sim:tokens=30 sim:delay_ms=0"


def expected(prompt: str) -> str:
    options = parse_options(prompt, None)
    return reply_text(options.prompt, options)


class Broken:
    """A small real upstream that fails every request the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await request.read()
        if self.mode == "timeout":
            await asyncio.sleep(2)  # past first_byte_timeout_s
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        status = int(self.mode)
        code = {401: "InvalidApiKey", 429: "Throttling.RateQuota"}.get(status, "InternalError")
        return web.json_response({"code": code, "message": "no", "request_id": "r"}, status=status)


@contextlib.asynccontextmanager
async def broken_upstream(mode: str) -> AsyncIterator[Broken]:
    broken = Broken(mode)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", broken.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    broken.url = f"http://127.0.0.1:{port}"
    try:
        yield broken
    finally:
        await runner.cleanup()


def flaky_first(url: str) -> str:
    return f"""
[upstream]
first_byte_timeout_s = 0.5
[upstreams.flaky]
kind = "dashscope"
base_url = "{url}"
api_key = "sk-flaky"
[assistants.default]
upstreams = ["flaky", "default"]
"""


@pytest.mark.parametrize("mode", ["429", "500", "timeout", "drop"])
async def test_a_turn_fails_over_before_its_first_step(gateway, mode) -> None:
    """A retryable failure of the first upstream moves the turn on; it then cools down."""
    async with broken_upstream(mode) as broken:
        gw = await gateway(flaky_first(broken.url))
        sock = await gw.chat(token=ALICE)
        reply = await sock.ask(PROMPT)
        assert reply.end["type"] == "done" and reply.text == expected(PROMPT)
        assert broken.requests == 1 and len(gw.sim.state.requests) == 1
        ready = await (await gw.client.get("/readyz")).json()
        assert ready["upstreams"]["default"] == {"state": "ok"}
        assert ready["upstreams"]["flaky"]["state"] == "cooling_down"
        again = await sock.ask(PROMPT, "c-2")
        assert again.text == expected(PROMPT)
        assert broken.requests == 1  # cooling down: not tried
        metrics = await (await gw.client.get("/metrics")).text()
        assert 'gateway_upstream_failovers_total{upstream="flaky"} 1.0' in metrics


async def test_upstream_auth_does_not_fail_over(gateway) -> None:
    """401 from the first upstream is the turn's error; the next upstream is not asked."""
    async with broken_upstream("401") as broken:
        gw = await gateway(flaky_first(broken.url))
        sock = await gw.chat(token=ALICE)
        reply = await sock.ask(PROMPT)
        assert reply.end["type"] == "error" and reply.end["code"] == "upstream_auth"
        assert broken.requests == 1 and len(gw.sim.state.requests) == 0


async def test_a_reply_continued_after_a_drop_at_step_20_is_the_uninterrupted_reply(
    gateway, sim
) -> None:
    """continue_on_failure: one reply, no repeated text, done.continued, whole history,
    usage counting both calls."""
    gw = await gateway(
        f"""
[upstreams.backup]
kind = "dashscope"
base_url = "{sim.url}"
api_key = "sk-backup"
[assistants.default]
upstreams = ["default", "backup"]
continue_on_failure = true
"""
    )
    prompt = "go on 你好 sim:tokens=40 sim:fault=drop sim:fault_at=20 sim:delay_ms=0"
    sock = await gw.chat(token=ALICE)
    reply = await sock.ask(prompt)
    assert reply.end["type"] == "done" and reply.end["continued"] == 1
    assert reply.text == expected(prompt)
    assert reply.end["seq"] == 40  # seq went on: one reply of 40 steps
    assert len(sim.state.requests) == 2
    conv = await gw.app[keys.BACKENDS].conversations.get(sock.connected["conversation_id"])
    assert conv.messages[-1].content == expected(prompt)
    assert conv.messages[-1].status == "complete"
    used = reply.end["usage"]
    assert used["estimated"] is True  # the dropped call reported nothing
    assert used["output_tokens"] > 20  # both calls' output
