"""The SSE decoder, fed plain bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.llm.sse import SSEDecoder, SSEEvent

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "dashscope").glob("*.sse"))


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_split_of_each_fixture_decodes_the_same(path: Path) -> None:
    """Each DashScope transcript gives the same events whole, split anywhere, byte by byte."""
    data = path.read_bytes()
    whole = decode(data)
    assert whole and all(e.event == "result" and e.status == 200 for e in whole)
    for cut in range(len(data) + 1):
        assert decode(data[:cut], data[cut:]) == whole
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == whole


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_ends_comments_and_multiline_data(eol: bytes) -> None:
    """LF, CRLF and CR all end lines; comments are skipped; data lines join with LF."""
    raw = eol.join([b": hello", b"event: x", b"data: one", b"data:two", b"id: 7", b"", b""])
    for step in (1, 2, 3, len(raw)):
        events = decode(*(raw[i : i + step] for i in range(0, len(raw), step)))
        assert events == [SSEEvent(event="x", data="one\ntwo", id="7")]


def test_utf8_character_split_across_chunks() -> None:
    """A multi-byte character cut between chunks decodes whole."""
    raw = "data: 你好🚀\n\n".encode()
    for cut in range(len(raw)):
        assert decode(raw[:cut], raw[cut:])[0].data == "你好🚀"


def test_status_comment_and_error_event() -> None:
    """DashScope's `:HTTP_STATUS/429` comment becomes the event's status."""
    raw = b'id:3\nevent:error\n:HTTP_STATUS/429\ndata:{"code":"Throttling"}\n\n'
    assert decode(raw) == [SSEEvent("error", '{"code":"Throttling"}', "3", None, 429)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    """Bytes that are not UTF-8 become U+FFFD."""
    assert decode(b"data: \xff\xfe ok\n\n")[0].data == "\ufffd\ufffd ok"


def test_truncated_event_is_pending_not_emitted() -> None:
    """An event without its blank line is not emitted, and the decoder says it holds one."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: partial\n") == []
    assert decoder.pending


def _time_line(size: int) -> float:
    """Best of three: seconds to decode one line of ``size`` bytes fed in 64 KiB chunks."""
    line = b"data: " + b"x" * size + b"\n\n"
    best = float("inf")
    for _ in range(3):
        decoder = SSEDecoder()
        start = time.perf_counter()
        for i in range(0, len(line), 65536):
            decoder.feed(line[i : i + 65536])
        best = min(best, time.perf_counter() - start)
    return best


def test_multi_megabyte_lines_decode_in_linear_time() -> None:
    """A 5 MB data line fed in 64 KiB chunks decodes; 10x the size costs far less than 100x."""
    events = decode(b"data: " + b"y" * 5_000_000 + b"\n\n")
    assert len(events[0].data) == 5_000_000
    small, big = _time_line(1_000_000), _time_line(10_000_000)
    assert big < 30 * small  # linear is about 10x; rescanning the buffer would be ~100x


@pytest.mark.parametrize("ending", [b"\n", b"", b"\r\n"])
def test_final_event_without_blank_line_is_read_when_its_json_is_whole(ending: bytes) -> None:
    """A body that ends after its last data line (no blank line) still yields that event."""
    decoder = SSEDecoder()
    raw = b'data: {"a": 1}\n\nid: 9\nevent: result\ndata: {"b": "\xe4\xbd\xa0"}' + ending
    events = decoder.feed(raw)
    assert events == [SSEEvent(data='{"a": 1}')]
    assert decoder.close() == [SSEEvent("result", '{"b": "你"}', "9")]


@pytest.mark.parametrize(
    "tail", [b'data: {"b": "cut', b"data: [DONE]", b"data: 42", b'data: {"b": 1}\ndata: {"c"']
)
def test_final_event_without_blank_line_is_dropped_unless_whole_json(tail: bytes) -> None:
    """A last event that is not one whole JSON object (a cut connection) is dropped."""
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n\n' + tail) == [SSEEvent(data='{"a": 1}')]
    assert decoder.close() == []
