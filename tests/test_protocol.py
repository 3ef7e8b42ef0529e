"""The frame codec, with plain strings."""

from __future__ import annotations

import json

import pytest

from gateway import protocol
from gateway.protocol import FrameError, parse_client_frame
from gateway.replies import ReplyLog, ReplyState, StepKind


def test_message_text_and_parts_shapes_decode_to_the_same_text() -> None:
    """Both contract shapes of `message` decode to one Message."""
    a = parse_client_frame('{"type":"message","id":"c-1","text":"Hello"}')
    b = parse_client_frame(
        '{"type":"message","id":"c-1","message":[{"type":"Plain","text":"Hel"},'
        '{"type":"Plain","text":"lo"}]}'
    )
    assert a == b == protocol.Message(id="c-1", text="Hello")


@pytest.mark.parametrize(
    ("data", "code", "fragment"),
    [
        ("{not json", "bad_json", "JSON"),
        ("[1,2]", "bad_request", "object"),
        ('{"id":"x"}', "bad_request", "'type'"),
        ('{"type":"dance"}', "unknown_type", "dance"),
        ('{"type":"message","id":"c-1"}', "bad_request", "'text'"),
        ('{"type":"message","text":"hi"}', "bad_request", "'id'"),
        ('{"type":"message","id":"c-1","text":"  "}', "bad_request", "empty"),
        ('{"type":"message","id":"c-1","text":"hi","colour":1}', "bad_request", "colour"),
        ('{"type":"message","id":"c-1","text":"hi","interrupt":"yes"}', "bad_request", "interrupt"),
        ('{"type":"message","id":"c-1","text":"hi","temperature":9}', "bad_request", "temperature"),
        ('{"type":"resume","message_id":"m-1","last_seq":-1}', "bad_request", "last_seq"),
        ('{"type":"resume","last_seq":1}', "bad_request", "message_id"),
        ('{"type":"auth"}', "bad_request", "token"),
    ],
)
def test_bad_frames_name_the_problem(data: str, code: str, fragment: str) -> None:
    """Each malformed frame raises an error with the contract's code, naming the field."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(data)
    assert info.value.error.code == code
    assert fragment in info.value.error.message


def test_frame_error_keeps_the_frames_id_for_reply_to() -> None:
    """An error about a frame with an id carries that id."""
    with pytest.raises(FrameError) as info:
        parse_client_frame('{"type":"message","id":"c-9","text":""}')
    assert info.value.reply_to == "c-9"


def test_delta_frame_template_is_valid_json_with_exact_text() -> None:
    """The templated delta frame decodes to the same fields as an encoded dict."""
    text = 'a "quoted" \\ line\n你好🚀\u2028'
    frame = protocol.delta_frame(protocol.delta_prefix('m-"1'), 7, text)
    assert json.loads(frame) == {"type": "delta", "message_id": 'm-"1', "seq": 7, "text": text}


def test_reasoning_frame_template_is_valid_json_with_exact_text() -> None:
    """The templated reasoning frame decodes like a delta frame with type reasoning."""
    text = 'thinking "hard" \\ 你好🚀\u2028'
    frame = protocol.reasoning_frame(protocol.reasoning_prefix('m-"1'), 4, text)
    assert json.loads(frame) == {"type": "reasoning", "message_id": 'm-"1', "seq": 4, "text": text}


def test_done_counts_answer_and_reasoning_apart_and_seq_over_both() -> None:
    """done: content_length is the answer's, reasoning_length the reasoning's, seq the last
    step of either kind."""
    reply = ReplyLog("m-1", "conv-1", "alice", "c-1", "qwen-plus")
    reply.append("hm, ", StepKind.REASONING)
    reply.append("🚀", StepKind.REASONING)
    reply.append("Hi")
    reply.finish(ReplyState.COMPLETED, "stop")
    done = json.loads(protocol.end_frame(reply))
    assert (done["seq"], done["content_length"], done["reasoning_length"]) == (3, 2, 5)


def test_error_frame_has_code_message_retryable() -> None:
    """Every error frame carries code, message and retryable, plus reply_to when given."""
    from gateway.errors import Busy

    frame = json.loads(protocol.error_frame(Busy(), reply_to="c-2"))
    assert frame == {
        "type": "error",
        "code": "busy",
        "message": Busy.default_message,
        "retryable": True,
        "reply_to": "c-2",
    }


@pytest.mark.parametrize("heartbeat_s", [30.0, 30, 0.0, 12.5])
@pytest.mark.parametrize("running", [None, 'm-"run'])
def test_connected_frame_template_is_the_encoded_dict(heartbeat_s: float, running) -> None:
    """The templated connected frame is the very text encode() gives its dict, key order too,
    with strings that need escaping in every per-socket field."""
    fields = {
        "connection_id": "c-1",
        "conversation_id": 'conv "x" \\ 你好🚀\u2028\x00',
        "assistant": "défault",
        "session_type": "group",
        "user": 'bob"\n',
        "heartbeat_s": heartbeat_s,
        "model": "qwen-plus",
        "offline_demo": True,
    }
    expected: dict[str, object] = {"type": "connected", "protocol": 1, **fields}
    if running is not None:
        expected["running_message_id"] = running
    frame = protocol.connected_frame(**fields, running_message_id=running)  # type: ignore[arg-type]
    assert frame == protocol.encode(expected)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"type":"message","id":"x","text":"hi \\ud800"}', "'text'"),
        ('{"type":"message","id":"x","message":[{"type":"Plain","text":"\\udfff"}]}', "'message'"),
        ('{"type":"message","id":"x\\ud800","text":"hi"}', "'id'"),
        ('{"type":"message","id":"x\\u0000","text":"hi"}', "'id'"),
        ('{"type":"auth","token":"a\\udc80b"}', "'token'"),
        ('{"type":"resume","message_id":"m-1:steps"}', "'message_id'"),
        ('{"type":"resume","message_id":"m-\\ud800"}', "'message_id'"),
        ('{"type":"cancel","message_id":"m-1}"}', "'message_id'"),
    ],
)
def test_unencodable_text_and_bad_ids_are_refused_naming_the_field(
    data: str, fragment: str
) -> None:
    """Lone surrogates, control characters in ids and ids outside the charset: bad_request."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(data)
    assert info.value.error.code == "bad_request"
    assert fragment in info.value.error.message
    frame = protocol.error_frame(info.value.error, reply_to=info.value.reply_to)
    frame.encode("utf-8")  # the error itself is sendable
    assert info.value.reply_to in (None, "x")


def test_text_with_nul_and_control_characters_is_kept_as_sent() -> None:
    """Control characters are valid Unicode: text keeps them (JSON escapes them on the way out)."""
    frame = parse_client_frame('{"type":"message","id":"c-1","text":"a\\u0000b\\u001bc"}')
    assert isinstance(frame, protocol.Message) and frame.text == "a\x00b\x1bc"


def test_regenerate_and_edit_parse_into_typed_frames() -> None:
    """regenerate takes no field; edit takes message_id (a client or history id) and text."""
    assert parse_client_frame('{"type":"regenerate"}') == protocol.Regenerate()
    frame = parse_client_frame('{"type":"edit","message_id":"c 1","text":"new"}')
    assert frame == protocol.Edit("c 1", "new")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ('{"type":"regenerate","id":"x"}', "unknown field 'id'"),
        ('{"type":"edit","text":"x"}', "message_id"),
        ('{"type":"edit","message_id":"c-1"}', "'text'"),
        ('{"type":"edit","message_id":"c-1","text":"  "}', "empty"),
        ('{"type":"edit","message_id":"c-1","text":"\\ud800"}', "lone surrogate"),
        ('{"type":"edit","message_id":"c\\u0001","text":"x"}', "control characters"),
    ],
)
def test_bad_regenerate_and_edit_frames_name_the_problem(data: str, needle: str) -> None:
    """Each malformed redo frame is a bad_request naming what is wrong."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(data)
    assert caught.value.error.code == "bad_request"
    assert needle in caught.value.error.message
