"""Our upstream client against the simulator over loopback: every mode, fault, retry, close."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from collections.abc import Awaitable

import pytest
from aiohttp import web

from gateway.errors import UpstreamError
from gateway.llm.events import ChatMessage, ChatRequest, Finish, Image, Reasoning, Step
from gateway.llm.simulator import DASHSCOPE_PATH, MULTIMODAL_PATH, parse_options, reply_text
from tests.llm.conftest import collect, collect_model, request, sdk_text, upstream_for

MODES = [
    pytest.param({"result_format": "message"}, id="dashscope-message-cumulative"),
    pytest.param({"result_format": "text"}, id="dashscope-text-cumulative"),
    pytest.param(
        {"result_format": "message", "incremental_output": True}, id="dashscope-message-incremental"
    ),
    pytest.param(
        {"result_format": "text", "incremental_output": True}, id="dashscope-text-incremental"
    ),
    pytest.param({"kind": "openai"}, id="openai"),
]


def expected(prompt: str) -> str:
    options = parse_options(prompt, None)
    return reply_text(options.prompt, options)


def base(sim, overrides: dict) -> str:
    return sim.url + ("/compatible-mode/v1" if overrides.get("kind") == "openai" else "")


@pytest.mark.parametrize("overrides", MODES)
@pytest.mark.parametrize("split", ["", " sim:split=1", " sim:split=odd"])
async def test_every_mode_reads_the_simulators_exact_reply(
    sim, overrides: dict, split: str
) -> None:
    """Each wire mode, with the body cut at awkward bytes, yields exactly the reply."""
    prompt = f"Hello 你好 🚀 sim:tokens=40 sim:delay_ms=0{split}"
    async with upstream_for(base(sim, overrides), **overrides) as up:
        events = await collect(up, prompt)
    assert "".join(e.text for e in events if isinstance(e, Step)) == expected(prompt)
    assert all(e.text for e in events if isinstance(e, Step))
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "stop"
    assert events[-1].output_tokens == 40


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("result_format", ["message", "text"])
async def test_official_sdk_reads_the_simulator_like_us(
    sim, incremental: bool, result_format: str
) -> None:
    """The dashscope SDK, pointed at the simulator, reads the same text as our client."""
    prompt = "SDK check 你好 sim:tokens=25 sim:delay_ms=0"
    sdk, last = await sdk_text(
        sim.url, incremental=incremental, result_format=result_format, prompt=prompt
    )
    assert sdk == expected(prompt)
    assert last.usage.output_tokens == 25


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        ("401", "upstream_auth", False),
        ("403", "upstream_auth", False),
        ("429", "upstream_throttled", True),
        ("400filter", "content_filtered", False),
        ("500", "upstream_error", True),
        ("error", "upstream_error", True),
        ("throttle", "upstream_throttled", True),
        ("filter", "content_filtered", False),
        ("drop", "upstream_error", True),
        ("malformed", "upstream_error", True),
        ("stall", "upstream_timeout", True),
    ],
)
@pytest.mark.parametrize("kind", ["dashscope", "openai"])
async def test_every_simulator_fault_maps_to_its_code(
    sim, fault: str, code: str, retryable: bool, kind: str
) -> None:
    """Faults before and inside the stream raise the contract's code and retryability."""
    overrides = {"kind": kind, "idle_timeout_s": 0.3}
    async with upstream_for(base(sim, overrides), **overrides) as up:
        with pytest.raises(UpstreamError) as info:
            await collect(up, f"x sim:tokens=10 sim:delay_ms=0 sim:fault={fault} sim:fault_at=3")
    assert (info.value.code, info.value.retryable) == (code, retryable)


async def test_retries_before_the_first_step_only(sim) -> None:
    """fail_times=2 succeeds with two retries, fails with one; a mid-stream fault is not retried."""
    async with upstream_for(sim.url, max_retries=2) as up:
        events = await collect(up, "retry me sim:tokens=5 sim:delay_ms=0 sim:fail_times=2")
    assert isinstance(events[-1], Finish)
    assert [r.outcome for r in sim.state.requests] == ["fault", "fault", "completed"]
    async with upstream_for(sim.url, max_retries=1) as up:
        with pytest.raises(UpstreamError):
            await collect(up, "again sim:tokens=5 sim:delay_ms=0 sim:fail_times=2")
    before = len(sim.state.requests)
    async with upstream_for(sim.url, max_retries=3) as up:
        with pytest.raises(UpstreamError):
            await collect(up, "mid sim:tokens=9 sim:delay_ms=0 sim:fault=error sim:fault_at=4")
    assert len(sim.state.requests) == before + 1


async def test_first_byte_timeout_is_separate_from_idle(sim) -> None:
    """A slow first event trips first_byte_timeout_s; steady steps slower than it do not."""
    async with upstream_for(sim.url, first_byte_timeout_s=0.2, idle_timeout_s=5) as up:
        with pytest.raises(UpstreamError) as info:
            await collect(up, "slow start sim:first_delay_ms=1000 sim:tokens=3")
        assert info.value.code == "upstream_timeout"
        events = await collect(up, "steady sim:tokens=3 sim:delay_ms=300")
    assert isinstance(events[-1], Finish)


async def test_idle_timeout_starts_at_the_first_event(sim) -> None:
    """idle_timeout_s does not cut a model still thinking; first_byte_timeout_s covers that."""
    async with upstream_for(sim.url, first_byte_timeout_s=5, idle_timeout_s=0.2) as up:
        events = await collect(up, "think sim:first_delay_ms=600 sim:tokens=3 sim:delay_ms=0")
    assert isinstance(events[-1], Finish)


async def test_silence_while_the_consumer_holds_the_stream_is_not_a_timeout(sim) -> None:
    """A room held past idle_timeout_s is the consumer's pause, not the model's silence."""
    holds = 0

    def room() -> Awaitable[None] | None:
        nonlocal holds
        holds += 1
        return asyncio.sleep(0.5) if holds == 1 else None  # the hold itself is the test

    async with upstream_for(sim.url, idle_timeout_s=0.2) as up:
        stream = up.stream(request("held sim:tokens=50 sim:delay_ms=1"), room)
        events = [event async for event in stream]
    assert isinstance(events[-1], Finish) and holds > 1


async def test_a_stall_after_the_first_event_times_out_after_idle(sim) -> None:
    """The model going silent mid-reply fails with upstream_timeout about idle_timeout_s later."""
    loop = asyncio.get_running_loop()
    async with upstream_for(sim.url, idle_timeout_s=0.3) as up:
        stream = up.stream(request("x sim:tokens=10 sim:delay_ms=0 sim:fault=stall sim:fault_at=3"))
        assert isinstance(await anext(stream), Step)
        started = loop.time()
        with pytest.raises(UpstreamError) as info:
            async for _ in stream:
                pass
    assert info.value.code == "upstream_timeout"
    assert 0.25 <= loop.time() - started < 1.5


async def test_closing_the_stream_closes_the_upstream_within_a_second(sim) -> None:
    """aclose() after a few steps: the simulator sees the client gone within 1 s."""
    async with upstream_for(sim.url) as up:
        stream = up.stream(request("long sim:tokens=1000 sim:delay_ms=50"))
        for _ in range(3):
            assert isinstance(await anext(stream), Step)
        await stream.aclose()
        record = await sim.state.wait_closed(within=1.0)
    assert record.outcome == "disconnected" and record.steps_sent < 1000


async def test_cancelling_the_reading_task_closes_the_upstream(sim) -> None:
    """Cancelling the task that reads the stream closes the upstream within 1 s."""
    got = asyncio.Event()

    async def read(up) -> None:
        async for _ in up.stream(request("long sim:tokens=1000 sim:delay_ms=50")):
            got.set()

    async with upstream_for(sim.url) as up:
        task = asyncio.create_task(read(up))
        await got.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        record = await sim.state.wait_closed(within=1.0)
    assert record.outcome == "disconnected"


async def test_reasoning_from_the_simulator_is_kept_apart(sim) -> None:
    """reasoning=N streams N reasoning events before an answer that does not contain them."""
    prompt = "think sim:tokens=5 sim:delay_ms=0 sim:reasoning=3"
    async with upstream_for(sim.url, incremental_output=True) as up:
        events = await collect(up, prompt)
    assert [type(e) for e in events[:3]] == [Reasoning] * 3
    assert "".join(e.text for e in events if isinstance(e, Step)) == expected(prompt)


async def _peak_reading(url: str, chars: int) -> int:
    """Peak bytes allocated while reading a cumulative reply of ``chars`` characters."""
    prompt = f"big{chars} sim:chars={chars} sim:tokens=100 sim:delay_ms=0"
    async with upstream_for(url) as up:
        tracemalloc.start()
        try:
            size = 0
            async for event in up.stream(request(prompt)):
                if isinstance(event, Step):
                    size += len(event.text)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert size == chars
    return peak


@pytest.mark.timeout(120)
async def test_five_megabyte_cumulative_reply_reads_in_proportional_memory(sim_process) -> None:
    """A 5 MB cumulative reply (each event repeats all text so far) reads without error, and
    peak memory grows with the reply (about 5x for 5x the text), not with the bytes read."""
    small = await _peak_reading(sim_process.url, 1_000_000)
    big = await _peak_reading(sim_process.url, 5_000_000)
    # 250 MB cross the socket for the big reply; memory tracks one event, not the stream.
    assert big < 7 * small, (small, big)
    assert big < 12 * 5_000_000, big  # a few copies of one event, UCS-4 text (emoji) included


async def test_room_is_awaited_between_reads_and_holds_the_stream(sim) -> None:
    """While the consumer's room is awaited, no event arrives; released, the reply completes."""
    blocked, waiting = asyncio.Event(), asyncio.Event()
    calls = 0

    def room() -> asyncio.Future[bool] | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            waiting.set()
            return asyncio.ensure_future(blocked.wait())
        return None

    async with upstream_for(sim.url) as up:
        stream = up.stream(request("fast sim:tokens=400 sim:delay_ms=0"), room)
        texts: list[str] = []

        async def read() -> None:
            async for event in stream:
                if isinstance(event, Step):
                    texts.append(event.text)

        task = asyncio.create_task(read())
        await waiting.wait()
        held = len(texts)
        await asyncio.sleep(0.2)  # the stream must stay still this long: nothing to await
        assert len(texts) == held < 400  # at most the first read's events
        blocked.set()
        await asyncio.wait_for(task, 10)
    assert len(texts) == 400 and calls > 1


PNG = Image("image/png", bytes(1229))
JPEG = Image("image/jpeg", bytes(3500))


def _text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, Step))


def _reasoning(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, Reasoning))


@pytest.mark.parametrize("incremental", [False, True])
async def test_multimodal_endpoint_text_and_images_in_reply_out(sim, incremental: bool) -> None:
    """A qwen3.5 model goes to the multimodal endpoint; its images are acknowledged and the
    content lists, cumulative or incremental, read to exactly the reply."""
    prompt = "What are these? sim:tokens=30 sim:delay_ms=0"
    message = ChatMessage("user", prompt, (PNG, JPEG))
    async with upstream_for(sim.url, incremental_output=incremental) as up:
        events = [e async for e in up.stream(ChatRequest("qwen3.5-plus", (message,)))]
    record = sim.state.requests[-1]
    assert record.path == MULTIMODAL_PATH
    note = "I see 2 images (image/png, 1.2 KB; image/jpeg, 3.4 KB).\n\n"
    options = parse_options(prompt, None)
    assert _text(events).startswith(note)
    assert _text(events) == reply_text(options.prompt, options, note)
    assert isinstance(events[-1], Finish) and events[-1].output_tokens == 30


async def test_url_error_switches_endpoint_once_and_is_remembered(sim) -> None:
    """A model the name rule sends to the wrong endpoint is switched on "url error", and
    the next request for that model goes straight to the right one."""
    prompt = "hello sim:tokens=5 sim:delay_ms=0 sim:only=multimodal"
    async with upstream_for(sim.url, max_retries=0) as up:
        first = await collect_model(up, "house-vision-1", prompt)
        second = await collect_model(up, "house-vision-1", prompt)
        other = await collect_model(up, "qwen3.5-plus", "x sim:tokens=3 sim:only=text")
    assert _text(first) == _text(second) == expected(prompt)
    assert isinstance(other[-1], Finish)
    paths = [r.path for r in sim.state.requests]
    assert paths == [
        DASHSCOPE_PATH,
        MULTIMODAL_PATH,
        MULTIMODAL_PATH,
        MULTIMODAL_PATH,
        DASHSCOPE_PATH,
    ]
    assert [r.outcome for r in sim.state.requests][:2] == ["fault", "completed"]


async def test_a_named_endpoint_is_never_switched(sim) -> None:
    """With the endpoint named, "url error" is the reply's error (upstream_error), and every
    attempt goes to the named endpoint."""
    async with upstream_for(sim.url, max_retries=1) as up:
        request = ChatRequest(
            "qwen-vl-max", (ChatMessage("user", "x sim:delay_ms=0"),), endpoint="text"
        )
        with pytest.raises(UpstreamError) as info:
            [e async for e in up.stream(request)]
    assert (info.value.code, info.value.status) == ("upstream_error", 400)
    assert "url error" in info.value.message
    assert {r.path for r in sim.state.requests} == {DASHSCOPE_PATH}


async def test_no_retry_after_reasoning(sim) -> None:
    """A failure after reasoning but before any answer is not retried; with nothing
    produced, the same failure is."""
    fault = "sim:tokens=5 sim:delay_ms=0 sim:fault=error sim:fault_at=0"
    async with upstream_for(sim.url, max_retries=2, incremental_output=True) as up:
        with pytest.raises(UpstreamError):
            await collect(up, f"a {fault} sim:reasoning=2")
        assert len(sim.state.requests) == 1
        with pytest.raises(UpstreamError):
            await collect(up, f"b {fault} sim:reasoning=0")
    assert len(sim.state.requests) == 1 + 3


MODES_WITH_REASONING = [
    pytest.param("qwen-plus", {"result_format": "message"}, id="text-cumulative"),
    pytest.param("qwen-plus", {"incremental_output": True}, id="text-incremental"),
    pytest.param("qwen3.5-plus", {}, id="multimodal-cumulative"),
    pytest.param("qwen3.5-plus", {"incremental_output": True}, id="multimodal-incremental"),
    pytest.param("qwen-plus", {"kind": "openai"}, id="openai-reasoning_content"),
    pytest.param(
        "qwen-plus", {"kind": "openai", "thinking_style": "vllm"}, id="openai-vllm-reasoning"
    ),
]


@pytest.mark.parametrize(("model", "overrides"), MODES_WITH_REASONING)
async def test_thinking_on_streams_reasoning_apart_with_its_tokens(
    sim, model: str, overrides: dict
) -> None:
    """thinking=on makes the simulator think (4 steps, capped by the budget to 3 where the
    budget is sent); every endpoint and field name yields the reasoning apart, and its
    token count."""
    vllm = overrides.get("thinking_style") == "vllm"  # no budget in vLLM's kwargs
    prompt = "think 你好 sim:tokens=6 sim:delay_ms=0"
    async with upstream_for(base(sim, overrides), **overrides) as up:
        request = ChatRequest(
            model, (ChatMessage("user", prompt),), thinking="on", thinking_budget=3
        )
        events = [e async for e in up.stream(request)]
    steps = 4 if vllm else 3
    assert _reasoning(events) == "".join(f"Thinking {i + 1}. " for i in range(steps))
    assert _text(events) == expected(prompt)
    assert isinstance(events[-1], Finish)
    assert (events[-1].reasoning_tokens, events[-1].output_tokens) == (steps, 6 + steps)
    if vllm:
        assert sim.state.requests[-1].body["chat_template_kwargs"] == {"enable_thinking": True}


async def _read_into(events: list, stream) -> None:
    async for event in stream:
        events.append(event)


CONTINUATIONS = [
    pytest.param("qwen-plus", {"incremental_output": True}, id="text"),
    pytest.param("qwen3.5-plus", {}, id="multimodal-cumulative"),
    pytest.param("qwen-plus", {"kind": "openai"}, id="openai-partial"),
    pytest.param("qwen-plus", {"kind": "openai", "continuation": "vllm"}, id="openai-vllm"),
]


@pytest.mark.parametrize(("model", "overrides"), CONTINUATIONS)
async def test_partial_continuation_equals_the_uninterrupted_reply(
    sim, model: str, overrides: dict
) -> None:
    """A reply cut by a dropped stream, continued from its text as a prefix, joins to the
    uninterrupted reply exactly, with no reasoning again and no second fault."""
    prompt = "Continue 你好 🚀 sim:tokens=20 sim:delay_ms=0 sim:reasoning=2 sim:fault=drop sim:fault_at=7"
    async with upstream_for(base(sim, overrides), **overrides) as up:
        messages = (ChatMessage("user", prompt),)
        first: list = []
        with pytest.raises(UpstreamError):
            await _read_into(first, up.stream(ChatRequest(model, messages)))
        prefix, whole = _text(first), expected(prompt)
        # Also one character more: a prefix need not end where a step ends.
        for start in (prefix, whole[: len(prefix) + 1]):
            rest = [e async for e in up.stream(ChatRequest(model, messages, prefix=start))]
            assert start + _text(rest) == whole
            assert not _reasoning(rest)  # thought through before the first answer text
            assert isinstance(rest[-1], Finish) and rest[-1].finish_reason == "stop"
    assert prefix and whole != prefix


async def test_a_final_event_without_its_blank_line_finishes_the_reply(aiohttp_server) -> None:
    """The body's last event lacks its blank line: both wires still read it and finish."""
    ds = b'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"text":"Hi","finish_reason":"stop"}}'
    oa = b'data: {"id":"c","choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n'

    def handler(body: bytes):
        async def handle(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(body)
            return resp

        return handle

    app = web.Application()
    app.router.add_post(DASHSCOPE_PATH, handler(ds))
    app.router.add_post("/v1/chat/completions", handler(oa))
    url = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    async with upstream_for(url, result_format="text") as up:
        assert _text(await collect(up, "x")) == "Hi"
    async with upstream_for(url + "/v1", kind="openai") as up:
        assert _text(await collect(up, "x")) == "Hi"


def _sdk_multimodal(url: str, incremental: bool | None, prompt: str) -> tuple[str, object]:
    import dashscope

    dashscope.base_http_api_url = url + "/api/v1"
    content = [{"image": PNG.reference()}, {"text": prompt}]
    responses = dashscope.MultiModalConversation.call(
        model="qwen3.5-plus",
        messages=[{"role": "user", "content": content}],
        api_key="sk-test",
        stream=True,
        incremental_output=incremental,
    )
    texts, last = [], None
    for last in responses:
        assert last.status_code == 200, last
        items = last.output.choices[0].message.content
        texts.append("".join(item.get("text", "") for item in items))
    return ("".join(texts) if incremental else texts[-1]), last


@pytest.mark.parametrize("incremental", [None, True, False])
async def test_official_sdk_multimodal_conversation_reads_the_simulator(
    sim, incremental: bool | None
) -> None:
    """MultiModalConversation.call(stream=True) reads the simulator's multimodal stream to
    the same text as our client (None: the service's cumulative default; False: the SDK asks
    for increments and re-accumulates them)."""
    prompt = "SDK sees 你好 sim:tokens=12 sim:delay_ms=0"
    text, last = await asyncio.to_thread(_sdk_multimodal, sim.url, incremental, prompt)
    note = "I see 1 image (image/png, 1.2 KB).\n\n"
    options = parse_options(prompt, None)
    assert text == reply_text(options.prompt, options, note)
    assert last.usage.output_tokens == 12
    assert sim.state.requests[-1].path == MULTIMODAL_PATH


async def test_official_sdk_generation_reads_reasoning(sim) -> None:
    """Generation with enable_thinking reads the simulator's reasoning_content and answer."""
    import dashscope

    dashscope.base_http_api_url = sim.url + "/api/v1"
    prompt = "reason sim:tokens=8 sim:delay_ms=0"
    responses = await dashscope.AioGeneration.call(
        model="qwen-plus",
        messages=[{"role": "user", "content": prompt}],
        api_key="sk-test",
        stream=True,
        result_format="message",
        incremental_output=True,
        enable_thinking=True,
    )
    reasoning = answer = ""
    async for response in responses:
        message = response.output.choices[0].message
        reasoning += message.get("reasoning_content") or ""
        answer += message.content or ""
    assert reasoning == "Thinking 1. Thinking 2. Thinking 3. Thinking 4. "
    assert answer == expected(prompt)
    assert response.usage.output_tokens_details["reasoning_tokens"] == 4


@pytest.mark.parametrize("kind", ["dashscope", "openai"])
async def test_a_five_megabyte_image_reaches_the_simulator(sim, kind: str) -> None:
    """A 5 MB image goes upstream whole (as a data: URL) on both wires; the reply sees it."""
    overrides = {"kind": kind}
    image = Image("image/png", bytes(5_000_000))
    message = ChatMessage("user", "big sim:tokens=3 sim:delay_ms=0", (image,))
    async with upstream_for(base(sim, overrides), **overrides) as up:
        events = [e async for e in up.stream(ChatRequest("qwen3.5-plus", (message,)))]
    assert _text(events).startswith("I see 1 image (image/png, 4882.8 KB).")
