"""DashScope's wire format: the pure parser, and fixture replays read by us and by the SDK."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.errors import (
    ContentFiltered,
    UpstreamAuth,
    UpstreamError,
    UpstreamThrottled,
)
from gateway.llm.body import JsonBody
from gateway.llm.dashscope import (
    MULTIMODAL_PATH,
    PATH,
    DashScopeParser,
    DashScopeWire,
    endpoint_for_model,
)
from gateway.llm.events import ChatMessage, ChatRequest, Finish, Image, Reasoning, Step
from gateway.llm.sse import SSEEvent
from tests.llm.conftest import collect, sdk_text, upstream_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dashscope"


def test_cumulative_output_is_diffed_by_length() -> None:
    """Each event's whole text so far becomes only what it added."""
    parser = DashScopeParser(incremental=False)
    out = []
    for text, reason in [("1", "null"), ("1, 2", "null"), ("1, 2", "null"), ("1, 2, 3", "stop")]:
        data = f'{{"output":{{"text":"{text}","finish_reason":"{reason}"}},"usage":{{"input_tokens":3,"output_tokens":{len(text)}}}}}'
        out.extend(parser.feed(SSEEvent("result", data)))
    assert out == [Step("1"), Step(", 2"), Step(", 3"), Finish("stop", 3, 7, None)]


def test_reasoning_is_kept_apart_from_the_answer() -> None:
    """message.reasoning_content becomes Reasoning events, not answer text."""
    parser = DashScopeParser(incremental=True)
    think = '{"output":{"choices":[{"message":{"content":"","reasoning_content":"hmm","role":"assistant"},"finish_reason":"null"}]}}'
    answer = '{"output":{"choices":[{"message":{"content":"Hi","role":"assistant"},"finish_reason":"stop"}]}}'
    events = parser.feed(SSEEvent("result", think)) + parser.feed(SSEEvent("result", answer))
    assert events[:2] == [Reasoning("hmm"), Step("Hi")]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            SSEEvent("error", '{"code":"Throttling.RateQuota","message":"slow"}', status=429),
            UpstreamThrottled,
        ),
        (
            SSEEvent("error", '{"code":"DataInspectionFailed","message":"no"}', status=400),
            ContentFiltered,
        ),
        (SSEEvent("error", '{"code":"InvalidApiKey","message":"no"}', status=401), UpstreamAuth),
        (SSEEvent("result", "{not json"), UpstreamError),
    ],
)
def test_error_events_map_to_contract_codes(event: SSEEvent, error: type) -> None:
    """Errors inside an HTTP 200 stream raise the contract's error."""
    with pytest.raises(error):
        DashScopeParser(incremental=False).feed(event)


def test_body_ending_without_finish_is_an_error() -> None:
    """A stream that stops before finish_reason is a dropped stream."""
    parser = DashScopeParser(incremental=True)
    parser.feed(SSEEvent("result", '{"output":{"text":"a","finish_reason":"null"}}'))
    with pytest.raises(UpstreamError, match="ended before"):
        parser.end()


async def _replay_server(aiohttp_server, body: bytes, status: int = 200, piece: int = 0):
    async def handler(request: web.Request) -> web.StreamResponse:
        if status != 200:
            return web.Response(body=body, status=status, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await resp.prepare(request)
        step = piece or len(body)
        for i in range(0, len(body), step):
            await resp.write(body[i : i + step])
        return resp

    app = web.Application()
    app.router.add_post(PATH, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    ("name", "incremental", "result_format"),
    [
        ("loongsuite_qwen_turbo_cumulative", False, "text"),
        ("loongsuite_qwen_turbo_incremental", True, "text"),
        ("alibaba_docs_qwen_plus_message_incremental", True, "message"),
    ],
)
@pytest.mark.parametrize("piece", [0, 1, 7])
async def test_fixture_replay_reads_the_same_as_the_official_sdk(
    aiohttp_server, name: str, incremental: bool, result_format: str, piece: int
) -> None:
    """Our client and the dashscope SDK read each recorded transcript to identical text."""
    body = (FIXTURES / f"{name}.sse").read_bytes()
    url = await _replay_server(aiohttp_server, body, piece=piece)
    async with upstream_for(url, incremental_output=incremental, result_format=result_format) as up:
        events = await collect(up, "hi")
    ours = "".join(e.text for e in events if isinstance(e, Step))
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "stop"
    assert ours == (await sdk_text(url, incremental=incremental, result_format=result_format))[0]
    assert ours  # the transcripts are not empty


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (
            401,
            b'{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}',
            "upstream_auth",
            False,
        ),
        (
            429,
            b'{"code":"Throttling.RateQuota","message":"slow down","request_id":"r2"}',
            "upstream_throttled",
            True,
        ),
        (
            400,
            b'{"code":"DataInspectionFailed","message":"bad","request_id":"r3"}',
            "content_filtered",
            False,
        ),
        (
            500,
            b'{"code":"InternalError","message":"oops","request_id":"r4"}',
            "upstream_error",
            True,
        ),
        (502, b"<html>bad gateway</html>", "upstream_error", True),
    ],
)
async def test_errors_before_the_stream_map_to_codes(
    aiohttp_server, status, body, code, retryable
) -> None:
    """Non-2xx answers (JSON or not) raise the contract's error with retryable set."""
    url = await _replay_server(aiohttp_server, body, status=status)
    async with upstream_for(url) as up:
        with pytest.raises(UpstreamError) as info:
            await collect(up, "hi")
    assert (info.value.code, info.value.retryable) == (code, retryable)


def _mm(content: list, reason: str = "null", reasoning: str | None = None) -> SSEEvent:
    message: dict = {"content": content, "role": "assistant"}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return SSEEvent(
        "result",
        json.dumps({"output": {"choices": [{"message": message, "finish_reason": reason}]}}),
    )


def test_multimodal_content_lists_cumulative() -> None:
    """Cumulative content lists (text items) and reasoning are diffed by length into events."""
    parser = DashScopeParser(incremental=False)
    events = []
    for event in [
        _mm([], reasoning="Look"),
        _mm([], reasoning="Looking at it."),
        _mm([{"text": "A dog"}], reasoning="Looking at it."),
        _mm([{"text": "A dog "}, {"text": "on sand."}], "stop", "Looking at it."),
    ]:
        events.extend(parser.feed(event))
    assert events == [
        Reasoning("Look"),
        Reasoning("ing at it."),
        Step("A dog"),
        Step(" on sand."),
        Finish("stop", None, None, None),
    ]


def test_multimodal_content_lists_incremental_with_usage() -> None:
    """Incremental content lists pass through; reasoning_tokens comes from the usage details."""
    parser = DashScopeParser(incremental=True)
    usage = {
        "input_tokens": 9,
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
    }
    last = json.loads(_mm([], "stop", "").data) | {"usage": usage}
    events = (
        parser.feed(_mm([], reasoning="hm"))
        + parser.feed(_mm([{"text": "Hi"}]))
        + parser.feed(SSEEvent("result", json.dumps(last)))
    )
    assert events == [Reasoning("hm"), Step("Hi"), Finish("stop", 9, 7, None, 3)]


@pytest.mark.parametrize(
    ("word", "mapped"),
    [("tool_calls", "stop"), ("function_call", "stop"), ("weird", "stop"), ("length", "length")],
)
def test_finish_reasons_outside_the_contract_become_stop_and_are_logged(
    word: str, mapped: str
) -> None:
    """tool_calls, function_call and unknown words end as stop, logged with the upstream's word."""
    with capture_logs() as logs:
        events = DashScopeParser(incremental=True).feed(_mm([{"text": "x"}], word))
    assert events[-1] == Finish(mapped, None, None, None)
    assert any(e.get("upstream_finish_reason") == word for e in logs) == (word != "length")


def test_content_filter_finish_raises_content_filtered() -> None:
    """finish_reason content_filter is the content_filtered error, not a reply."""
    with pytest.raises(ContentFiltered):
        DashScopeParser(incremental=True).feed(_mm([{"text": "x"}], "content_filter"))


@pytest.mark.parametrize(
    ("model", "endpoint"),
    [
        ("qwen-plus", "text"),
        ("qwen3-max", "text"),
        ("qwq-plus", "text"),
        ("qwen3.5-plus", "multimodal"),
        ("qwen3.7-plus", "multimodal"),
        ("qwen-vl-max-latest", "multimodal"),
        ("qwen3-vl-plus", "multimodal"),
        ("qvq-max", "multimodal"),
        ("qwen-omni-turbo", "multimodal"),
        ("Qwen3.5-Flash", "multimodal"),
    ],
)
def test_endpoint_is_chosen_from_the_models_name(model: str, endpoint: str) -> None:
    """Known multimodal families go to the multimodal endpoint, others to the text one."""
    assert endpoint_for_model(model) == endpoint
    routed = DashScopeWire().route(ChatRequest(model, (ChatMessage("user", "hi"),)))
    assert routed.endpoint == endpoint


PNG = Image("image/png", b"\x89PNG\r\n\x1a\n" + bytes(100))


def test_multimodal_request_carries_content_lists_images_thinking_and_prefix() -> None:
    """Messages become content lists with {image} data URLs first; thinking and a partial
    prefix (which turns thinking off) are sent as the API reference shows."""
    request = ChatRequest(
        "qwen3.5-plus",
        (
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "What is this?", (PNG, Image(url="https://x.test/a.jpg"))),
        ),
        thinking="on",
        thinking_budget=50,
    )
    wire = DashScopeWire()
    routed = wire.route(request)
    fields, headers = wire.request(routed, "sk-x")
    body = json.loads(JsonBody(fields).decode())  # as sent
    assert wire.path(routed) == MULTIMODAL_PATH
    messages = body["input"]["messages"]
    assert messages[0] == {"role": "system", "content": [{"text": "Be brief."}]}
    image = messages[1]["content"][0]["image"]
    assert (
        image.startswith("data:image/png;base64,")
        and base64.b64decode(image.split(",")[1]) == PNG.data
    )
    assert messages[1]["content"][1:] == [
        {"image": "https://x.test/a.jpg"},
        {"text": "What is this?"},
    ]
    params = body["parameters"]
    assert (params["enable_thinking"], params["thinking_budget"]) == (True, 50)
    assert (params["incremental_output"], params["result_format"]) == (True, "message")
    assert headers["X-DashScope-SSE"] == "enable"
    # A continuation: the prefix as a partial assistant message, without thinking.
    fields, _ = wire.request(dataclasses.replace(routed, prefix="It is"), "sk-x")
    body = json.loads(JsonBody(fields).decode())
    assert body["input"]["messages"][-1] == {
        "role": "assistant",
        "content": [{"text": "It is"}],
        "partial": True,
    }
    assert body["parameters"]["enable_thinking"] is False
    assert "thinking_budget" not in body["parameters"]


@pytest.mark.parametrize(("thinking", "sent"), [("auto", None), ("off", False)])
def test_text_request_sends_thinking_only_when_asked(thinking: str, sent: bool | None) -> None:
    """thinking auto sends no enable_thinking; off sends false; content stays a string."""
    wire = DashScopeWire()
    routed = wire.route(
        ChatRequest("qwen-plus", (ChatMessage("user", "hi"),), thinking=thinking, thinking_budget=9)
    )  # type: ignore[arg-type]
    body, _ = wire.request(routed, "")
    assert wire.path(routed) == PATH
    assert body["input"]["messages"] == [{"role": "user", "content": "hi"}]
    assert body["parameters"].get("enable_thinking") is sent
    assert "thinking_budget" not in body["parameters"]


def test_images_route_to_multimodal_and_the_text_endpoint_refuses_them() -> None:
    """A request with images goes multimodal when not named; named text, it is refused."""
    request = ChatRequest("qwen-plus", (ChatMessage("user", "hi", (PNG,)),))
    assert DashScopeWire().route(request).endpoint == "multimodal"
    with pytest.raises(UpstreamError) as info:
        DashScopeWire().request(dataclasses.replace(request, endpoint="text"), "")
    assert (info.value.code, info.value.retryable) == ("upstream_error", False)


def _multimodal_replay_app(body: bytes) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await resp.prepare(request)
        await resp.write(body)
        return resp

    app = web.Application()
    app.router.add_post(PATH, handler)
    app.router.add_post(MULTIMODAL_PATH, handler)
    return app


def _plain_reading(body: bytes, incremental: bool) -> tuple[str, str]:
    """Reasoning and answer text by reading each data line's JSON directly."""
    answer, reasoning = "", ""
    for line in body.decode().splitlines():
        if not line.startswith("data:"):
            continue
        message = json.loads(line[5:])["output"]["choices"][0]["message"]
        content = message["content"]
        text = "".join(i["text"] for i in content) if isinstance(content, list) else content
        think = message.get("reasoning_content") or ""
        answer, reasoning = (
            (answer + text, reasoning + think)
            if incremental
            else (text or answer, think or reasoning)
        )
    return reasoning, answer


@pytest.mark.parametrize(
    ("name", "model", "incremental", "reasoning_tokens"),
    [
        ("erda_qwen_vl_multimodal_cumulative", "qwen-vl-max", False, None),
        ("docs_qwen35_plus_multimodal_thinking_incremental", "qwen3.5-plus", True, 12),
        ("docs_qwen_plus_text_thinking_incremental", "qwen-plus", True, 12),
    ],
)
@pytest.mark.parametrize("cut", ["", "no-blank-line"])
async def test_reasoning_and_multimodal_transcripts_read_like_their_json(
    aiohttp_server, name: str, model: str, incremental: bool, reasoning_tokens: int | None, cut: str
) -> None:
    """Each transcript yields the reasoning and answer its data lines hold, also when the body
    ends without the last event's blank line."""
    body = (FIXTURES / f"{name}.sse").read_bytes()
    if cut:
        body = body.rstrip(b"\n")
    server = await aiohttp_server(_multimodal_replay_app(body))
    async with upstream_for(
        str(server.make_url("")).rstrip("/"), incremental_output=incremental
    ) as up:
        events = [e async for e in up.stream(ChatRequest(model, (ChatMessage("user", "hi"),)))]
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = "".join(e.text for e in events if isinstance(e, Step))
    assert (reasoning, answer) == _plain_reading(body, incremental)
    assert answer
    assert isinstance(events[-1], Finish) and events[-1].finish_reason == "stop"
    assert events[-1].reasoning_tokens == reasoning_tokens
