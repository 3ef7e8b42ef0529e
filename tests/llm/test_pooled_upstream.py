"""PooledUpstream end to end: several real simulators, faults chosen per upstream (each
client's session sends its own X-Simulator header), failover, cooldown, continuation."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.config import Secret, UpstreamConfig
from gateway.errors import UpstreamAuth, UpstreamError, UpstreamThrottled
from gateway.llm import dashscope, simulator
from gateway.llm.client import HttpUpstream, make_session
from gateway.llm.dashscope import DashScopeWire
from gateway.llm.events import ChatMessage, ChatRequest, Finish, Step
from gateway.llm.pool import Member, PooledUpstream, PoolTrace, UpstreamPool
from gateway.llm.simulator import SIMULATOR_STATE, SimulatorState, parse_options, reply_text
from gateway.metrics import Metrics
from gateway.usage import estimate_tokens, reply_usage

CONFIG = UpstreamConfig(
    api_key=Secret("sk-test"), max_retries=0, first_byte_timeout_s=0.5, idle_timeout_s=2
)


@dataclasses.dataclass
class Sim:
    name: str
    state: SimulatorState
    client: HttpUpstream

    @property
    def requests(self) -> int:
        return len(self.state.requests)


class Clock:
    """A settable POSIX clock for the pool's cooldowns."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def simulators(**faults: str) -> AsyncIterator[dict[str, Sim]]:
    """One simulator per name, its client sending ``X-Simulator: <faults[name]>``."""
    async with contextlib.AsyncExitStack() as stack:
        sims = {}
        for name, fault in faults.items():
            runner, url = await simulator.start_simulator("127.0.0.1", 0)
            stack.push_async_callback(runner.cleanup)
            session = (
                aiohttp.ClientSession(headers={"X-Simulator": fault})
                if fault
                else make_session(CONFIG)
            )
            stack.push_async_callback(session.close)
            client = HttpUpstream(CONFIG, session, url, DashScopeWire())
            sims[name] = Sim(name, runner.app[SIMULATOR_STATE], client)
        yield sims


def pooled(
    sims: dict[str, Sim],
    preference: list[list[str]],
    *,
    clock: Clock | None = None,
    continue_on_failure: bool = False,
    metrics: Metrics | None = None,
) -> PooledUpstream:
    pool = UpstreamPool(
        [Member(name) for name in sims],
        cooldown_s=5,
        max_cooldown_s=60,
        clock=clock or Clock(),
        rng=random.Random(3),
    )
    clients = {name: sim.client for name, sim in sims.items()}
    return PooledUpstream(
        pool, clients, preference, continue_on_failure=continue_on_failure, metrics=metrics
    )


def chat(prompt: str) -> ChatRequest:
    return ChatRequest("qwen-plus", (ChatMessage("user", prompt),))


def expected(prompt: str) -> str:
    options = parse_options(prompt, None)
    return reply_text(options.prompt, options)


async def run(up: PooledUpstream, prompt: str, trace: PoolTrace | None = None) -> list:
    return [event async for event in up.stream(chat(prompt), trace=trace)]


async def run_into(up: PooledUpstream, prompt: str, seen: list) -> None:
    async for event in up.stream(chat(prompt)):
        seen.append(event)


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, Step))


PROMPT = "Tell me about pools 你好 sim:tokens=30 sim:delay_ms=0"


@pytest.mark.parametrize(
    "fault",
    [
        "fault=429",
        "fault=500",
        "first_delay_ms=3000",  # no first event within first_byte_timeout_s
        "fault=drop fault_at=0",  # the connection is cut before the first step
    ],
    ids=["429", "500", "timeout", "drop"],
)
async def test_failover_before_the_first_step(fault: str) -> None:
    """A retryable failure before any text moves the turn to the next upstream at once."""
    metrics = Metrics()
    async with simulators(primary=fault, backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]], metrics=metrics)
        trace = PoolTrace()
        events = await run(up, PROMPT, trace)
    assert text_of(events) == expected(PROMPT)
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "stop"
    assert (sims["primary"].requests, sims["backup"].requests) == (1, 1)
    assert trace.failovers == 1 and trace.continued == 0 and trace.upstream == "backup"
    assert [c.upstream for c in trace.calls] == ["primary", "backup"]
    assert trace.calls[0].reported is None and trace.calls[1].reported is not None
    rendered = metrics.render().decode()
    assert 'gateway_upstream_failovers_total{upstream="primary"} 1.0' in rendered


async def test_upstream_auth_does_not_fail_over() -> None:
    """401: the turn fails with upstream_auth and the backup never sees the request."""
    async with simulators(primary="fault=401", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]])
        with pytest.raises(UpstreamAuth):
            await run(up, PROMPT)
        assert sims["backup"].requests == 0
        assert up._pool.states()[0].ok  # a wrong key is not a cooldown


async def test_every_upstream_failing_raises_the_last_error() -> None:
    """No upstream left: the version-1 rule, the last failure is the turn's error."""
    async with simulators(primary="fault=500", backup="fault=429") as sims:
        up = pooled(sims, [["primary"], ["backup"]])
        with pytest.raises(UpstreamThrottled):
            await run(up, PROMPT)
        assert (sims["primary"].requests, sims["backup"].requests) == (1, 1)


async def test_cooldown_skips_the_failed_upstream_then_it_recovers() -> None:
    """After a 429 the next turns go straight to the backup; once the cooldown has run out
    the preferred upstream is tried again and, answering, is healthy."""
    clock = Clock()
    async with simulators(primary="fail_times=1", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]], clock=clock)
        assert text_of(await run(up, PROMPT)) == expected(PROMPT)
        assert (sims["primary"].requests, sims["backup"].requests) == (1, 1)
        second = PoolTrace()
        assert text_of(await run(up, PROMPT, second)) == expected(PROMPT)
        assert (sims["primary"].requests, sims["backup"].requests) == (1, 2)
        assert second.failovers == 0  # the cooled-down upstream was not retried
        clock.now += 5
        third = PoolTrace()
        assert text_of(await run(up, PROMPT, third)) == expected(PROMPT)
        assert (sims["primary"].requests, sims["backup"].requests) == (2, 2)
        assert third.upstream == "primary"
        assert all(state.ok for state in up._pool.states())


async def test_a_mid_stream_failure_without_continuation_is_the_turns_error() -> None:
    """continue_on_failure off: a drop after text fails the reply, nothing is re-issued."""
    async with simulators(primary="fault=drop fault_at=10", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]])
        seen: list = []
        with pytest.raises(UpstreamError):
            await run_into(up, PROMPT, seen)
        assert len(seen) == 10 and sims["backup"].requests == 0


async def test_a_failure_during_reasoning_only_is_not_continued() -> None:
    """Reasoning but no answer yet: nothing to continue from, the reply fails."""
    prompt = "Think sim:tokens=10 sim:delay_ms=0 sim:reasoning=3"
    async with simulators(primary="fault=drop fault_at=0", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]], continue_on_failure=True)
        with pytest.raises(UpstreamError):
            await run(up, prompt)
        assert sims["backup"].requests == 0


async def test_continuation_is_one_stream_and_counts_both_calls() -> None:
    """After a drop at step 20 the backup is asked to go on: one stream of steps, the
    first call's text kept, continued counted, usage summing both calls."""
    prompt = "A long story 你好 sim:tokens=40 sim:delay_ms=0"
    metrics = Metrics()
    async with simulators(primary="fault=drop fault_at=20", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]], continue_on_failure=True, metrics=metrics)
        trace = PoolTrace()
        events = await run(up, prompt, trace)
    steps = [e.text for e in events if isinstance(e, Step)]
    full = expected(prompt)
    first = "".join(steps[:20])
    assert full.startswith(first)
    assert isinstance(events[-1], Finish)
    assert trace.continued == 1 and trace.failovers == 0
    [a, b] = trace.calls
    assert (a.upstream, a.answer_from, a.answer_to, a.reported) == ("primary", 0, len(first), None)
    assert (b.upstream, b.answer_from, b.answer_to) == ("backup", len(first), len(text_of(events)))
    usage = reply_usage(trace.calls, prompt, text_of(events))
    assert usage.estimated  # the dropped call never reported
    assert b.reported is not None
    assert usage.output_tokens == b.reported.output_tokens + estimate_tokens(first)
    assert usage.input_tokens == b.reported.input_tokens + estimate_tokens(prompt)
    assert (
        'gateway_upstream_continuations_total{upstream="backup"} 1.0' in metrics.render().decode()
    )


_PARTIAL = "partial" in inspect.getsource(simulator) and "partial" in inspect.getsource(dashscope)


@pytest.mark.xfail(
    not _PARTIAL,
    reason="the simulator does not honour DashScope partial: true yet (branch q-qwen adds it)",
    strict=True,
)
async def test_a_continued_reply_equals_the_uninterrupted_one() -> None:
    """Dropped at step 20 and continued elsewhere from the text so far, the reply's text is
    exactly the simulator's uninterrupted reply, and the backup got it as a partial prefix."""
    prompt = "A long story 你好 sim:tokens=40 sim:delay_ms=0"
    async with simulators(primary="fault=drop fault_at=20", backup="") as sims:
        up = pooled(sims, [["primary"], ["backup"]], continue_on_failure=True)
        trace = PoolTrace()
        events = await run(up, prompt, trace)
        sent = sims["backup"].state.requests[-1].body["input"]["messages"][-1]
    assert text_of(events) == expected(prompt)
    assert trace.continued == 1
    assert sent["role"] == "assistant" and sent.get("partial") is True
    assert text_of(events).startswith(str(sent["content"]))
