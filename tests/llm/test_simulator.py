"""The simulator at the HTTP level: determinism, shapes, faults as the real service shows them."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from gateway.llm.script import reply_steps
from gateway.llm.simulator import (
    DASHSCOPE_PATH,
    MULTIMODAL_PATH,
    OPENAI_PATH,
    parse_options,
    reply_text,
)


def body(prompt: str, **parameters) -> dict:
    return {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": prompt}]},
        "parameters": parameters,
    }


async def post(sim, prompt: str, *, sse: bool = True, path: str = DASHSCOPE_PATH, **params):
    headers = {"X-DashScope-SSE": "enable"} if sse else {}
    payload = (
        body(prompt, **params)
        if path == DASHSCOPE_PATH
        else {
            "model": "qwen-plus",
            "messages": [{"role": "user", "content": prompt}],
            "stream": sse,
            "stream_options": {"include_usage": True},
        }
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.url + path, json=payload, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


def test_replies_are_deterministic_with_markdown_and_multibyte_text() -> None:
    """Same prompt, same reply; it echoes the prompt and carries Markdown and astral emoji."""
    options = parse_options("Explain <b>this</b> sim:tokens=80", None)
    a, b = reply_text(options.prompt, options), reply_text(options.prompt, options)
    assert a == b
    assert a.startswith("You said: «Explain <b>this</b>».")
    assert "```python" in a and "- " in a and "🚀" in a and "你好" in a
    assert len(reply_steps(options.prompt, options)) == 80
    other = parse_options("Something else sim:tokens=80", None)
    assert reply_text(other.prompt, other) != a


def test_header_overrides_prompt_directives() -> None:
    """X-Simulator wins over sim: words; directives are removed from the prompt."""
    options = parse_options("hi sim:tokens=5 sim:delay_ms=7", "tokens=9 fault=drop")
    assert (options.prompt, options.tokens, options.delay_ms, options.fault) == (
        "hi",
        9,
        7.0,
        "drop",
    )


async def test_sse_events_have_the_services_shape(sim) -> None:
    """Events are id/event/:HTTP_STATUS/data, finish_reason "null" then "stop", no [DONE]."""
    status, raw = await post(sim, "hi sim:tokens=3 sim:delay_ms=0", result_format="text")
    text = raw.decode()
    assert status == 200
    assert text.count("event:result\n:HTTP_STATUS/200\ndata:") == 3
    assert '"finish_reason":"null"' in text and text.rstrip().endswith('"}')
    assert "[DONE]" not in text


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("401", 401, "InvalidApiKey"),
        ("429", 429, "Throttling.RateQuota"),
        ("500", 500, "InternalError"),
        ("400filter", 400, "DataInspectionFailed"),
    ],
)
async def test_errors_before_the_stream_are_json_bodies(sim, fault, status, code) -> None:
    """Faults before the stream answer the service's JSON error body with its status."""
    got, raw = await post(sim, f"x sim:fault={fault}")
    assert got == status
    assert f'"code":"{code}"' in raw.decode() and '"request_id"' in raw.decode()


async def test_mid_stream_error_event_keeps_http_200(sim) -> None:
    """A throttle mid-stream is an event:error with :HTTP_STATUS/429 inside a 200 body."""
    status, raw = await post(sim, "x sim:tokens=6 sim:delay_ms=0 sim:fault=throttle sim:fault_at=2")
    assert status == 200
    assert b"event:error\n:HTTP_STATUS/429\ndata:" in raw


async def test_split_bodies_carry_the_same_bytes(sim) -> None:
    """split=1 and split=odd write the same bytes as an unsplit body (ids aside)."""

    def strip(raw: bytes) -> list[str]:
        return [line for line in raw.decode().splitlines() if "request_id" not in line]

    _, whole = await post(sim, "same sim:tokens=12 sim:delay_ms=0", incremental_output=True)
    _, ones = await post(
        sim, "same sim:tokens=12 sim:delay_ms=0 sim:split=1", incremental_output=True
    )
    _, odd = await post(
        sim, "same sim:tokens=12 sim:delay_ms=0 sim:split=odd", incremental_output=True
    )
    assert len(strip(whole)) == len(strip(ones)) == len(strip(odd)) > 12


async def test_drop_cuts_the_body(sim) -> None:
    """fault=drop aborts the connection mid-body: the client sees a payload error."""
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(sim, "x sim:tokens=50 sim:delay_ms=0 sim:fault=drop sim:fault_at=5")


async def test_stall_then_client_close_is_seen_within_a_second(sim) -> None:
    """A stalled stream notices the client leaving and records it as disconnected."""
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            sim.url + DASHSCOPE_PATH,
            json=body("x sim:tokens=9 sim:delay_ms=0 sim:fault=stall sim:fault_at=2"),
            headers={"X-DashScope-SSE": "enable"},
        )
        await resp.content.readany()
        resp.close()
    record = await sim.state.wait_closed(within=1.0)
    assert record.outcome == "disconnected"


async def test_openai_stream_has_role_chunk_usage_and_done(sim) -> None:
    """The compatible-mode stream: first delta has the role, a usage chunk, then [DONE]."""
    status, raw = await post(sim, "hi sim:tokens=4 sim:delay_ms=0", path=OPENAI_PATH)
    text = raw.decode()
    assert status == 200
    assert '"delta":{"role":"assistant","content":""}' in text
    assert '"choices":[],"usage":' in text
    assert text.rstrip().endswith("data: [DONE]")


async def test_non_streaming_requests_get_one_json_body(sim) -> None:
    """Without SSE the DashScope endpoint answers the whole reply as JSON."""
    status, raw = await post(sim, "whole sim:tokens=6", sse=False, result_format="message")
    options = parse_options("whole sim:tokens=6", None)
    assert status == 200
    content = json.loads(raw)["output"]["choices"][0]["message"]["content"]
    assert content == reply_text(options.prompt, options)


async def _post_json(sim, path: str, payload: dict, sse: bool = True) -> tuple[int, bytes]:
    headers = {"X-DashScope-SSE": "enable"} if sse else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.url + path, json=payload, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


def _data(raw: bytes) -> list[dict]:
    return [json.loads(line[5:]) for line in raw.decode().splitlines() if line.startswith("data:")]


@pytest.mark.parametrize("model", ["qwen3.5-plus", "qwen-vl-max", "qvq-max"])
async def test_multimodal_models_on_the_text_endpoint_get_url_error(sim, model: str) -> None:
    """The text endpoint refuses a multimodal family with the service's 400 "url error"."""
    payload = {**body("hi"), "model": model}
    status, raw = await _post_json(sim, DASHSCOPE_PATH, payload)
    error = json.loads(raw)
    assert (status, error["code"]) == (400, "InvalidParameter")
    assert error["message"].startswith("url error, please check url") and error["request_id"]
    assert sim.state.requests[-1].outcome == "fault"


async def test_only_text_refuses_the_multimodal_endpoint(sim) -> None:
    """sim:only=text makes the multimodal endpoint answer "url error" too."""
    status, raw = await _post_json(sim, MULTIMODAL_PATH, body("hi sim:only=text"))
    assert status == 400 and b"url error" in raw


async def test_multimodal_endpoint_speaks_content_lists_and_sees_images(sim) -> None:
    """Content lists in, content lists out; the reply opens by acknowledging the images."""
    png = "data:image/png;base64," + base64.b64encode(bytes(2048)).decode()
    content = [
        {"image": png},
        {"image": "https://example.test/cat.jpg"},
        {"text": "sim:tokens=5 hi"},
    ]
    payload = {
        "model": "qwen3.5-plus",
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": {"incremental_output": True},
    }
    status, raw = await _post_json(sim, MULTIMODAL_PATH, payload)
    events = _data(raw)
    pieces = [e["output"]["choices"][0]["message"]["content"] for e in events]
    assert status == 200 and all(isinstance(p, list) for p in pieces)
    text = "".join(item["text"] for piece in pieces for item in piece)
    assert text.startswith("I see 2 images (image/png, 2.0 KB; https URL).\n\nYou said: «hi».")
    assert events[-1]["output"]["choices"][0]["finish_reason"] == "stop"


async def test_thinking_streams_reasoning_and_counts_it(sim) -> None:
    """enable_thinking streams reasoning_content first (4 steps, or thinking_budget) and
    reports reasoning_tokens in the usage; thinking off streams none."""
    on = body(
        "t sim:tokens=3 sim:delay_ms=0",
        result_format="message",
        incremental_output=True,
        enable_thinking=True,
        thinking_budget=2,
    )
    _, raw = await _post_json(sim, DASHSCOPE_PATH, on)
    events = _data(raw)
    thoughts = [e["output"]["choices"][0]["message"].get("reasoning_content") for e in events]
    assert thoughts[:2] == ["Thinking 1. ", "Thinking 2. "] and not any(thoughts[2:])
    assert events[-1]["usage"]["output_tokens_details"] == {"reasoning_tokens": 2}
    assert events[-1]["usage"]["output_tokens"] == 5
    off = body("t sim:tokens=3 sim:delay_ms=0", result_format="message", enable_thinking=False)
    _, raw = await _post_json(sim, DASHSCOPE_PATH, off)
    assert b"reasoning_content" not in raw


@pytest.mark.parametrize(
    ("extra", "field"),
    [({}, "reasoning_content"), ({"chat_template_kwargs": {"enable_thinking": True}}, "reasoning")],
)
async def test_openai_stream_reasoning_field_follows_the_request_style(
    sim, extra: dict, field: str
) -> None:
    """The compatible-mode stream carries reasoning_content; a vLLM-style request gets reasoning."""
    payload = {
        "model": "qwen-plus",
        "messages": [{"role": "user", "content": "t sim:tokens=2 sim:delay_ms=0"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "enable_thinking": True,
        **extra,
    }
    _, raw = await _post_json(sim, OPENAI_PATH, payload)
    chunks = [
        json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")
    ]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert [d[field] for d in deltas if field in d] == [f"Thinking {i}. " for i in range(1, 5)]
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}


async def test_partial_mode_continues_the_reply_from_the_prefix(sim) -> None:
    """An assistant prefix with partial: true gets the rest of the deterministic reply."""
    prompt = "go on sim:tokens=10 sim:delay_ms=0"
    options = parse_options(prompt, None)
    whole = reply_text(options.prompt, options)
    prefix = whole[:17]
    payload = body(prompt, result_format="message", incremental_output=True)
    payload["input"]["messages"].append({"role": "assistant", "content": prefix, "partial": True})
    _, raw = await _post_json(sim, DASHSCOPE_PATH, payload)
    rest = "".join(e["output"]["choices"][0]["message"]["content"] for e in _data(raw))
    assert prefix + rest == whole


@pytest.fixture
async def demo_sim():
    """The simulator as the offline demo serves it: directives capped."""
    from gateway.llm.script import DEMO_LIMITS
    from gateway.llm.simulator import SIMULATOR_STATE, start_simulator
    from tests.conftest import Sim

    runner, url = await start_simulator("127.0.0.1", 0, DEMO_LIMITS)
    try:
        yield Sim(url, runner.app[SIMULATOR_STATE])
    finally:
        await runner.cleanup()


async def test_demo_limits_cap_reply_size_and_steps(demo_sim) -> None:
    """The demo's simulator cuts `sim:chars=3000000 sim:tokens=3000` to 20 000 characters
    in 2 000 steps."""
    prompt = "x sim:chars=3000000 sim:tokens=3000 sim:delay_ms=0"
    status, raw = await post(demo_sim, prompt, sse=False, path=OPENAI_PATH)
    answer = json.loads(raw)
    assert status == 200
    assert len(answer["choices"][0]["message"]["content"]) == 20_000
    assert answer["usage"]["completion_tokens"] == 2_000


async def test_demo_limits_hold_a_minimum_delay_between_steps(demo_sim) -> None:
    """`sim:delay_ms=0` still waits at least 5 ms a step in the demo."""
    import time

    started = time.monotonic()
    status, _ = await post(demo_sim, "x sim:tokens=20 sim:delay_ms=0")
    assert status == 200
    assert time.monotonic() - started >= 19 * 0.005


async def test_without_limits_every_directive_has_its_full_range(sim) -> None:
    """fake-upstream and tests: a reply beyond the demo's caps is made as asked."""
    prompt = "x sim:chars=100000 sim:tokens=3000 sim:delay_ms=0"
    status, raw = await post(sim, prompt, sse=False, path=OPENAI_PATH)
    answer = json.loads(raw)
    assert status == 200
    assert len(answer["choices"][0]["message"]["content"]) == 100_000
    assert answer["usage"]["completion_tokens"] == 3_000
