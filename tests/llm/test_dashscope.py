"""DashScope's wire format: the pure parser, and fixture replays read by us and by the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from gateway.errors import ContentFiltered, UpstreamAuth, UpstreamError, UpstreamThrottled
from gateway.llm.dashscope import PATH, DashScopeParser
from gateway.llm.events import Finish, Reasoning, Step
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
