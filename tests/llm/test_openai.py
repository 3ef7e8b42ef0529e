"""The OpenAI-compatible wire format: the pure chunk parser."""

from __future__ import annotations

import pytest

from gateway.errors import UpstreamError, UpstreamThrottled
from gateway.llm.events import Finish, Reasoning, Step
from gateway.llm.openai import OpenAIParser
from gateway.llm.sse import SSEEvent


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
