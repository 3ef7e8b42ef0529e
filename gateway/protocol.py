"""The WebSocket frame codec (contract section 4): pure, no I/O.

Client frames are decoded in one place, :func:`parse_client_frame`, into the typed messages
below (unknown fields are refused, so a typo is reported, not ignored). Server frames are
built by the ``*_frame`` functions as JSON text; the hot one, :func:`delta_frame`, fills a
template instead of encoding a dict, so only the text itself goes through the JSON encoder.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import BadImage, BadJson, BadRequest, GatewayError, UnknownType
from .frame_images import DecodedImage
from .replies import ReplyLog, ReplyState

PROTOCOL_VERSION = 1
_MAX_ID = 128

# Ids that name something the gateway keeps (conversations, replies): URL-unreserved
# characters only (RFC 3986), so they sit in a URL unescaped and never contain a key
# separator of the Redis layout. The client's own message ``id`` is only echoed and
# stored as a value: any characters but control characters and lone surrogates.
ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ ~ -"
_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_CLIENT_ID = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,128}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_id(value: object) -> bool:
    """Whether ``value`` may name a conversation or a reply (:data:`ID_RULE`)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str, name: str) -> str:
    """``value`` if it is a valid id, else :class:`BadRequest` naming ``name``."""
    if _ID.fullmatch(value) is None:
        raise BadRequest(f"{name} must be {ID_RULE}")
    return value


def check_text(value: str, name: str) -> str:
    """``value`` if it can be encoded as UTF-8, else :class:`BadRequest` naming ``name``.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 frame, Redis
    command or upstream request can carry: the text is refused, not repaired, so what the
    gateway stores and forwards is always exactly what the client sent.
    """
    if not value.isascii() and _SURROGATE.search(value) is not None:
        raise BadRequest(f"field {name!r} holds a lone surrogate (not valid Unicode text)")
    return value


# --------------------------------------------------------------------------- client frames


@dataclass(frozen=True, slots=True)
class Auth:
    """Client ``auth``: a fresh token for the open socket."""

    token: str


@dataclass(frozen=True, slots=True)
class UploadedImage:
    """An image of a ``message`` named by the id ``POST /api/v1/images`` gave it
    (``{"id": "i-..."}``; an extension the contract is silent on, docs/protocol.md)."""

    id: str


@dataclass(frozen=True, slots=True)
class StreamedImage:
    """A placeholder the socket put where it decoded a ``data:`` URL out of a large frame
    (gateway.frame_images); the session puts the decoded image in its place."""

    key: str


@dataclass(frozen=True, slots=True)
class Message:
    """Client ``message``: a user's text (its client ``id`` is echoed) and sampling options."""

    id: str
    text: str
    interrupt: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    # As sent (URLs, or uploaded images by id): checked by gateway.images against the limits.
    images: tuple[str | UploadedImage | StreamedImage | DecodedImage, ...] = ()


@dataclass(frozen=True, slots=True)
class Cancel:
    """Client ``cancel``: stop the running reply (the given one, or the conversation's)."""

    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """Client ``resume``: stream a reply again from after ``last_seq``."""

    message_id: str
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class Reset:
    """Client ``reset``: clear the conversation's history."""


@dataclass(frozen=True, slots=True)
class Regenerate:
    """Client ``regenerate``: a new reply to the last user turn, replacing the last reply."""


@dataclass(frozen=True, slots=True)
class Edit:
    """Client ``edit``: a user message's new ``text`` (``message_id``: its history ``id`` or
    the client ``id`` it was sent with); what followed it is dropped and a reply starts."""

    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Client ``ping``: answered with ``pong``."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Client ``disconnect``: close the socket normally."""


ClientFrame = Auth | Message | Cancel | Resume | Reset | Regenerate | Edit | Ping | Disconnect

_FIELDS: dict[str, frozenset[str]] = {
    "auth": frozenset({"token"}),
    "message": frozenset(
        {"id", "text", "message", "interrupt", "temperature", "top_p", "max_tokens", "images"}
    ),
    "cancel": frozenset({"message_id"}),
    "resume": frozenset({"message_id", "last_seq"}),
    "reset": frozenset(),
    "regenerate": frozenset(),
    "edit": frozenset({"message_id", "text"}),
    "ping": frozenset(),
    "disconnect": frozenset(),
}


class FrameError(GatewayError):
    """Wraps a client-frame error with the frame's ``id`` (for ``reply_to``) when it had one."""

    def __init__(self, error: GatewayError, reply_to: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.reply_to = reply_to


def parse_client_frame(data: str) -> ClientFrame:
    """Decode one text frame; raise :class:`FrameError` naming the problem."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise FrameError(BadJson(), None) from None
    if not isinstance(obj, dict):
        raise FrameError(BadRequest("a frame must be a JSON object"), None)
    raw_id = obj.get("id")
    reply_to = raw_id if isinstance(raw_id, str) and _CLIENT_ID.fullmatch(raw_id) else None
    try:
        return _decode(obj)
    except GatewayError as exc:
        raise FrameError(exc, reply_to) from None


def _decode(obj: dict[str, Any]) -> ClientFrame:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise BadRequest("missing field 'type' (a string)")
    fields = _FIELDS.get(kind)
    if fields is None:
        raise UnknownType(f"unknown frame type {kind[:40]!r}")
    extra = sorted(set(obj) - fields - {"type"})
    if extra:
        raise BadRequest(f"unknown field {extra[0][:40]!r} in {kind!r} frame")
    match kind:
        case "auth":
            return Auth(check_text(_str(obj, "token", required=True, limit=16384), "token"))
        case "message":
            return _message(obj)
        case "cancel":
            message_id = _str(obj, "message_id", limit=_MAX_ID)
            return Cancel(check_id(message_id, "field 'message_id'") if message_id else None)
        case "resume":
            last_seq = obj.get("last_seq", 0)
            if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
                raise BadRequest("field 'last_seq' must be a non-negative integer")
            message_id = _str(obj, "message_id", required=True, limit=_MAX_ID)
            return Resume(check_id(message_id, "field 'message_id'"), last_seq)
        case "reset":
            return Reset()
        case "regenerate":
            return Regenerate()
        case "edit":
            return _edit(obj)
        case "ping":
            return Ping()
        case _:
            return Disconnect()


def _str(obj: dict[str, Any], name: str, *, required: bool = False, limit: int) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(f"field {name!r} must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"field {name!r} is longer than {limit} characters")
    return value


def _message(obj: dict[str, Any]) -> Message:
    msg_id = _str(obj, "id", required=True, limit=_MAX_ID)
    if _CLIENT_ID.fullmatch(msg_id) is None:
        raise BadRequest("field 'id' must hold no control characters or lone surrogates")
    if "text" in obj and "message" in obj:
        raise BadRequest("send either 'text' or 'message', not both")
    if "message" in obj:
        parts = obj["message"]
        if not isinstance(parts, list) or not parts:
            raise BadRequest("field 'message' must be a non-empty list of parts")
        texts = []
        for part in parts:
            if (
                not isinstance(part, dict)
                or part.get("type") != "Plain"
                or not isinstance(part.get("text"), str)
            ):
                raise BadRequest('each part of \'message\' must be {"type":"Plain","text":...}')
            texts.append(part["text"])
        text = check_text("".join(texts), "message")
    else:
        value = obj.get("text")
        if not isinstance(value, str):
            raise BadRequest("field 'text' must be a string")
        text = check_text(value, "text")
    if not text.strip() and not obj.get("images"):
        raise BadRequest("the message is empty")
    interrupt = obj.get("interrupt", False)
    if not isinstance(interrupt, bool):
        raise BadRequest("field 'interrupt' must be true or false")
    return Message(
        id=msg_id,
        text=text,
        interrupt=interrupt,
        temperature=_number(obj, "temperature", 0.0, 2.0),
        top_p=_number(obj, "top_p", 0.0001, 1.0),
        max_tokens=_int(obj, "max_tokens", 1, 32768),
        images=_images(obj),
    )


def _edit(obj: dict[str, Any]) -> Edit:
    message_id = _str(obj, "message_id", required=True, limit=_MAX_ID)
    if _CLIENT_ID.fullmatch(message_id) is None:
        raise BadRequest("field 'message_id' must hold no control characters or lone surrogates")
    text = obj.get("text")
    if not isinstance(text, str):
        raise BadRequest("field 'text' must be a string")
    if not check_text(text, "text").strip():
        raise BadRequest("the message is empty")
    return Edit(message_id, text)


def _images(obj: dict[str, Any]) -> tuple[str | UploadedImage | StreamedImage, ...]:
    value = obj.get("images")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadImage(_IMAGES_SHAPE)
    images: list[str | UploadedImage | StreamedImage] = []
    for item in value:
        if isinstance(item, str):
            images.append(item)
        elif isinstance(item, dict) and isinstance(item.get("streamed"), str) and len(item) == 1:
            images.append(StreamedImage(item["streamed"]))
        elif isinstance(item, dict) and valid_id(item.get("id")):
            images.append(UploadedImage(item["id"]))
        else:
            raise BadImage(_IMAGES_SHAPE)
    return tuple(images)


_IMAGES_SHAPE = "field 'images' must be a list of data: or https:// URLs or {\"id\": ...} objects"


def _number(obj: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"field {name!r} must be a number between {low:g} and {high:g}")
    return float(value)


def _int(obj: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"field {name!r} must be an integer between {low} and {high}")
    return value


# --------------------------------------------------------------------------- server frames


def iso(ts: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds, e.g. 2026-11-22T15:30:45.123Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


_dumps_text = json.JSONEncoder(ensure_ascii=False).encode


def delta_prefix(message_id: str) -> str:
    """The constant head of every delta frame of one reply (computed once per reply)."""
    return '{"type":"delta","message_id":' + _dumps_text(message_id) + ',"seq":'


def delta_frame(prefix: str, seq: int, text: str) -> str:
    return f'{prefix}{seq},"text":{_dumps_text(text)}}}'


def reasoning_prefix(message_id: str) -> str:
    """The constant head of every reasoning frame of one reply (computed once per reply)."""
    return '{"type":"reasoning","message_id":' + _dumps_text(message_id) + ',"seq":'


def reasoning_frame(prefix: str, seq: int, text: str) -> str:
    """A reasoning piece: as :func:`delta_frame`, with :func:`reasoning_prefix`."""
    return f'{prefix}{seq},"text":{_dumps_text(text)}}}'


@functools.lru_cache(maxsize=64, typed=True)  # typed: 30 and 30.0 encode differently
def _connected_tail(heartbeat_s: float, model: str, offline_demo: bool) -> str:
    return encode({"heartbeat_s": heartbeat_s, "model": model, "offline_demo": offline_demo})[1:-1]


_CONNECTED_HEAD = '{"type":"connected","protocol":' + json.dumps(PROTOCOL_VERSION)


def connected_frame(
    *,
    connection_id: str,
    conversation_id: str,
    assistant: str,
    session_type: str,
    user: str,
    heartbeat_s: float,
    model: str,
    offline_demo: bool,
    running_message_id: str | None = None,
) -> str:
    """The ``connected`` frame, the same text as :func:`encode` of its dict (same key order).

    One is sent per socket, so it is built like :func:`delta_frame`: a constant head, the
    per-socket strings through the C string encoder, and the per-assistant tail (heartbeat,
    model, offline_demo) encoded once, cheaper than a dict through :func:`encode`
    (docs/performance.md).
    """
    s = _dumps_text
    frame = (
        f'{_CONNECTED_HEAD},"connection_id":{s(connection_id)},'
        f'"conversation_id":{s(conversation_id)},"assistant":{s(assistant)},'
        f'"session_type":{s(session_type)},"user":{s(user)},'
        f"{_connected_tail(heartbeat_s, model, offline_demo)}"
    )
    if running_message_id is not None:
        return f'{frame},"running_message_id":{s(running_message_id)}}}'
    return frame + "}"


def error_frame(
    error: GatewayError,
    *,
    reply_to: str | None = None,
    message_id: str | None = None,
) -> str:
    frame: dict[str, Any] = {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "retryable": error.retryable,
        **error.fields(),
    }
    if reply_to is not None:
        frame["reply_to"] = reply_to
    if message_id is not None:
        frame["message_id"] = message_id
    return encode(frame)


def pong_frame() -> str:
    return encode({"type": "pong", "ts": now_iso()})


def start_frame(reply: ReplyLog, *, resumed: bool = False) -> str:
    """The ``start`` frame a viewer gets before a reply's first delta."""
    frame: dict[str, Any] = {
        "type": "start",
        "message_id": reply.message_id,
        "reply_to": reply.reply_to,
        "conversation_id": reply.conversation_id,
        "model": reply.model,
    }
    if resumed:
        frame["resumed"] = True
    return encode(frame)


def end_frame(reply: ReplyLog) -> str:
    """A reply's last frame: its ``error`` if it failed with one, else ``done``."""
    if reply.state is ReplyState.FAILED and reply.error is not None:
        return error_frame(reply.error, message_id=reply.message_id)
    frame: dict[str, Any] = {
        "type": "done",
        "message_id": reply.message_id,
        "seq": reply.head,
        "finish_reason": reply.finish_reason,
        "content_length": reply.content_length,
        "reasoning_length": reply.reasoning_length,
        "usage": reply.usage.as_json(),
    }
    if reply.continued:
        frame["continued"] = reply.continued
    return encode(frame)


def user_message_frame(
    *,
    id: str,
    conversation_id: str,
    user: str,
    text: str,
    images: Sequence[Mapping[str, object]] = (),
) -> str:
    """A user's message, as every viewer of the conversation sees it (with ``images``, as
    history lists them, when it had any)."""
    frame: dict[str, object] = {
        "type": "user_message",
        "id": id,
        "conversation_id": conversation_id,
        "user": user,
        "text": text,
        "ts": now_iso(),
    }
    if images:
        frame["images"] = list(images)
    return encode(frame)


def queued_frame(reply_to: str, position: int) -> str:
    """The sender's place in the line for the upstream (``upstream.max_concurrent``)."""
    return encode({"type": "queued", "reply_to": reply_to, "position": position})


def history_cleared_frame(conversation_id: str) -> str:
    return encode({"type": "history_cleared", "conversation_id": conversation_id})


def token_expiring_frame() -> str:
    """The warning sent before a socket's token expires (an ``error`` frame, retryable)."""
    return encode(
        {
            "type": "error",
            "code": "token_expiring",
            "message": "the token expires soon; send a fresh auth frame",
            "retryable": True,
        }
    )


def broadcast_frame(message: str) -> str:
    return encode({"type": "broadcast", "message": message, "ts": now_iso()})


def reply_status(reply: ReplyLog) -> dict[str, Any]:
    """A reply's state as the generations resource shows it."""
    return {
        "message_id": reply.message_id,
        "conversation_id": reply.conversation_id,
        "status": str(reply.state),
        "seq": reply.head,
        "output_chars": reply.content_length,
        "finish_reason": reply.finish_reason,
        "started_at": iso(reply.started_at),
        "finished_at": iso(reply.finished_at) if reply.finished_at else None,
    }


def status_frame(reply: ReplyLog) -> str:
    """A generation watch's ``status`` frame."""
    return encode({"type": "status", **reply_status(reply)})
