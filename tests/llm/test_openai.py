"""The OpenAI-compatible wire format: the chunk parser, request shapes, transcript replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.errors import ContentFiltered, UpstreamError, UpstreamThrottled
from gateway.llm.body import JsonBody
from gateway.llm.events import ChatMessage, ChatRequest, Finish, Image, Reasoning, Step
from gateway.llm.openai import OpenAIParser, OpenAIWire
from gateway.llm.sse import SSEEvent
from tests.llm.conftest import collect, upstream_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai"


def chunk(delta: str, finish: str | None = None) -> SSEEvent:
    reason = "null" if finish is None else f'"{finish}"'
    return SSEEvent(
        data=f'{{"id":"x","choices":[{{"index":0,"delta":{delta},"finish_reason":{reason}}}]}}'
    )


def test_content_usage_and_done() -> None:
    """Deltas become steps; usage from the empty-choices chunk; [DONE] ends with Finish."""
    parser = OpenAIParser()
    events = []
    for event in [
        chunk('{"role":"assistant","content":""}'),
        chunk('{"reasoning_content":"think"}'),
        chunk('{"content":"Hel"}'),
        chunk('{"content":"lo"}', "stop"),
        SSEEvent(data='{"id":"x","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}'),
        SSEEvent(data="[DONE]"),
    ]:
        events.extend(parser.feed(event))
    assert events == [Reasoning("think"), Step("Hel"), Step("lo"), Finish("stop", 4, 2, "x")]


def test_error_chunk_maps_to_contract_code() -> None:
    """An {"error":...} chunk mid-stream raises the mapped error."""
    event = SSEEvent(
        data='{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}'
    )
    with pytest.raises(UpstreamThrottled):
        OpenAIParser().feed(event)


def test_end_without_finish_is_an_error_but_finish_without_done_is_not() -> None:
    """No finish_reason and no [DONE]: dropped; finish_reason without [DONE]: finished."""
    parser = OpenAIParser()
    parser.feed(chunk('{"content":"a"}'))
    with pytest.raises(UpstreamError):
        parser.end()
    parser = OpenAIParser()
    parser.feed(chunk('{"content":"a"}', "length"))
    assert parser.end() == [Finish("length", None, None, "x")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_read_from_either_field(field: str) -> None:
    """reasoning_content (DashScope, DeepSeek) and reasoning (vLLM, Ollama, OpenRouter) both
    become Reasoning events; a chunk carrying both is read once."""
    parser = OpenAIParser()
    events = parser.feed(chunk(f'{{"{field}":"hmm"}}'))
    events += parser.feed(chunk('{"reasoning_content":"a","reasoning":"a"}'))
    assert events == [Reasoning("hmm"), Reasoning("a")]


def test_reasoning_tokens_come_from_completion_tokens_details() -> None:
    """usage.completion_tokens_details.reasoning_tokens reaches Finish."""
    parser = OpenAIParser()
    parser.feed(chunk('{"content":"x"}', "stop"))
    usage = '{"prompt_tokens":3,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":6}}'
    parser.feed(SSEEvent(data=f'{{"id":"x","choices":[],"usage":{usage}}}'))
    assert parser.end() == [Finish("stop", 3, 9, "x", 6)]


@pytest.mark.parametrize("word", ["tool_calls", "function_call", "something_new"])
def test_finish_reasons_outside_the_contract_end_as_stop(word: str) -> None:
    """tool_calls, function_call and unknown finish reasons are stop, logged with the word."""
    parser = OpenAIParser()
    with capture_logs() as logs:
        parser.feed(chunk('{"content":"x"}', word))
    assert parser.end() == [Finish("stop", None, None, "x")]
    assert [e["upstream_finish_reason"] for e in logs if "upstream_finish_reason" in e] == [word]


def test_content_filter_raises_content_filtered() -> None:
    """finish_reason content_filter raises content_filtered at once."""
    with pytest.raises(ContentFiltered):
        OpenAIParser().feed(chunk('{"content":"x"}', "content_filter"))


PNG = Image("image/png", b"\x89PNG\r\n\x1a\n")


def _body(wire: OpenAIWire, **kw) -> dict:
    request = ChatRequest("m", (ChatMessage("user", "Look", (PNG,)),), **kw)
    return json.loads(JsonBody(wire.request(wire.route(request), "")[0]).decode())


def test_request_has_image_url_parts_and_always_asks_for_usage() -> None:
    """Images go as image_url parts after the text; include_usage is always sent; auto
    thinking sends nothing."""
    body = _body(OpenAIWire())
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": PNG.reference()}},
    ]
    assert PNG.reference().startswith("data:image/png;base64,")
    assert body["stream_options"] == {"include_usage": True}
    assert not {"enable_thinking", "chat_template_kwargs"} & body.keys()


def test_thinking_styles() -> None:
    """DashScope style: top-level enable_thinking and thinking_budget; vLLM style:
    chat_template_kwargs.enable_thinking."""
    body = _body(OpenAIWire(), thinking="on", thinking_budget=64)
    assert (body["enable_thinking"], body["thinking_budget"]) == (True, 64)
    body = _body(OpenAIWire(thinking_style="vllm"), thinking="off")
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "enable_thinking" not in body


def test_continuation_prefix() -> None:
    """vLLM continuation: a final assistant message with continue_final_message and no
    generation prompt; otherwise DashScope's partial: true."""
    body = _body(OpenAIWire(continuation="vllm"), prefix="So far")
    assert body["messages"][-1] == {"role": "assistant", "content": "So far"}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    body = _body(OpenAIWire(), prefix="So far", thinking="on")
    assert body["messages"][-1] == {"role": "assistant", "content": "So far", "partial": True}
    assert "continue_final_message" not in body
    assert body["enable_thinking"] is False  # partial mode is for non-thinking mode only


def _plain_reading(body: bytes) -> tuple[str, str]:
    reasoning = answer = ""
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                delta = choice["delta"] or {}
                reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
                answer += delta.get("content") or ""
    return reasoning, answer


@pytest.mark.parametrize(
    ("name", "reasoning_tokens"),
    [
        ("dashscope_compatible_qwen_plus_thinking", 12),
        ("deepseek_reasoner_reasoning_content", 12),
        ("vllm_qwen3_reasoning", None),
        ("openrouter_qwen3_reasoning", 5),
    ],
)
@pytest.mark.parametrize("piece", [0, 5])
async def test_reasoning_transcripts(
    aiohttp_server, name: str, reasoning_tokens: int | None, piece: int
) -> None:
    """Each recorded or documented stream yields the reasoning and answer its chunks hold."""
    body = (FIXTURES / f"{name}.sse").read_bytes()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        step = piece or len(body)
        for i in range(0, len(body), step):
            await resp.write(body[i : i + step])
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = await aiohttp_server(app)
    url = str(server.make_url("/v1"))
    async with upstream_for(url, kind="openai") as up:
        events = await collect(up, "hi")
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    answer = "".join(e.text for e in events if isinstance(e, Step))
    assert (reasoning, answer) == _plain_reading(body)
    assert reasoning and answer
    assert isinstance(events[-1], Finish)
    assert (events[-1].finish_reason, events[-1].reasoning_tokens) == ("stop", reasoning_tokens)
