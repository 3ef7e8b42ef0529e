"""The built-in Qwen simulator: a real aiohttp app speaking DashScope's and OpenAI's streams.

Endpoints:

* ``POST /api/v1/services/aigc/text-generation/generation``: DashScope native. With
  ``X-DashScope-SSE: enable`` (or ``Accept: text/event-stream``) it streams SSE events
  exactly like the service (``id:``, ``event:result``, ``:HTTP_STATUS/200``, ``data:{json}``),
  cumulative text by default, deltas with ``parameters.incremental_output``; ``result_format``
  ``message`` (``output.choices[0].message.content``) or ``text`` (``output.text``).
  Without SSE it answers one JSON body.
* ``POST /api/v1/services/aigc/multimodal-generation/generation``: DashScope's multimodal
  endpoint: the same events in ``message`` format with ``content`` as a list of ``{"text"}``
  items; ``{"image"}`` items in the request are acknowledged at the start of the reply. A
  model of a multimodal family (:func:`gateway.llm.dashscope.endpoint_for_model`, or
  ``sim:only=multimodal``) posted to the text endpoint gets HTTP 400 ``InvalidParameter``
  "url error", as the service answers; ``sim:only=text`` does the same the other way.
* ``POST /compatible-mode/v1/chat/completions``: OpenAI-compatible chunks, a usage chunk with
  empty ``choices`` when ``stream_options.include_usage``, then ``data: [DONE]``.
* ``GET /_sim/requests``: what it has seen (for tests in other processes); ``GET /healthz``.

Pace and faults are chosen per request by ``sim:key=value`` words in the last user message
or an ``X-Simulator: key=value ...`` header (:mod:`gateway.llm.script`): ``tokens``,
``delay_ms``, ``first_delay_ms``, ``chars``, ``reasoning``, ``reasoning_field``, ``only``,
``split`` (write the body in
pieces of N bytes, or ``odd``: 1, 2, 3, 5, 7 bytes, cutting UTF-8 characters), ``fail_times``,
and ``fault``: ``401``, ``403``, ``429``, ``500``, ``400filter`` before the stream; ``error``,
``throttle``, ``filter`` (an error event), ``drop`` (the connection is cut), ``stall`` (no
more bytes), ``malformed`` (a broken data line) after ``fault_at`` steps.

Reasoning: ``sim:reasoning=N`` steps, or 4 when the request turns thinking on
(``enable_thinking``, or vLLM's ``chat_template_kwargs.enable_thinking``), at most
``thinking_budget``; streamed as ``reasoning_content`` (DashScope, both endpoints), and in the
OpenAI stream as ``reasoning_content``, or ``reasoning`` for a vLLM-style request
(``chat_template_kwargs``) or ``sim:reasoning_field=reasoning``. Partial mode (a last
assistant message with ``"partial": true``, or ``continue_final_message``) continues the
reply from that prefix, so prefix plus continuation is the uninterrupted reply; a
continuation has no reasoning (partial mode is non-thinking) and no mid-stream fault (the
prompt that asked for one is sent again with the prefix), but faults before the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from .dashscope import endpoint_for_model
from .script import (
    FAULTS_BEFORE,
    SimLimits,
    SimOptions,
    capped,
    continue_from,
    image_note,
    parse_options,
    reply_steps,
    reply_text,
)

__all__ = [
    "MULTIMODAL_PATH",
    "SIMULATOR_STATE",
    "URL_ERROR",
    "RequestRecord",
    "SimOptions",
    "SimulatorState",
    "create_simulator_app",
    "parse_options",
    "reply_text",
    "run_simulator",
    "start_simulator",
]

log = structlog.get_logger("gateway.simulator")

DASHSCOPE_PATH = "/api/v1/services/aigc/text-generation/generation"
MULTIMODAL_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
URL_ERROR = (
    "url error, please check url\uff01 For details, see: "
    "https://help.aliyun.com/zh/model-studio/error-code#error-url"
)
OPENAI_PATH = "/compatible-mode/v1/chat/completions"

_DS_ERRORS = {
    "401": (401, "InvalidApiKey", "Invalid API-key provided."),
    "403": (403, "AccessDenied", "Access denied."),
    "429": (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    "500": (500, "InternalError", "An internal error has occured, please try again later."),
    "400filter": (400, "DataInspectionFailed", "Input data may contain inappropriate content."),
    "error": (500, "InternalError", "An internal error has occured, please try again later."),
    "throttle": (429, "Throttling.RateQuota", "Requests rate limit exceeded."),
    "filter": (400, "DataInspectionFailed", "Output data may contain inappropriate content."),
}
_OPENAI_CODES = {
    "InvalidApiKey": ("invalid_api_key", "invalid_request_error"),
    "AccessDenied": ("access_denied", "invalid_request_error"),
    "Throttling.RateQuota": ("rate_limit_exceeded", "requests"),
    "InternalError": ("internal_error", "server_error"),
    "DataInspectionFailed": ("data_inspection_failed", "data_inspection_failed"),
}


@dataclass(eq=False)
class RequestRecord:
    """One request the simulator served: its path, body, directives, and how it ended."""

    path: str
    body: dict[str, Any]
    options: SimOptions
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    outcome: str = "running"  # running | completed | disconnected | fault
    steps_sent: int = 0
    peer: str = ""  # the client's address: the same one twice means a pooled connection
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, outcome: str) -> None:
        if self.ended_at is None:
            self.outcome, self.ended_at = outcome, time.monotonic()
            self.ended.set()

    def public(self) -> dict[str, Any]:
        params = self.body.get("parameters") or {}
        return {
            "path": self.path,
            "outcome": self.outcome,
            "steps_sent": self.steps_sent,
            "peer": self.peer,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "model": self.body.get("model"),
            "incremental": bool(params.get("incremental_output")),
        }


class SimulatorState:
    """What one simulator app remembers: the requests it served (for tests to read), the
    failures counted per prompt for ``fail_times``, and the caps (the offline demo's) if any."""

    def __init__(self, limits: SimLimits | None = None) -> None:
        self.limits = limits  # None: every directive's full range
        self.requests: list[RequestRecord] = []
        self._failures: Counter[str] = Counter()
        self._new = asyncio.Event()

    async def wait_closed(self, index: int = -1, within: float = 5.0) -> RequestRecord:
        """Wait until request ``index`` (in arrival order) has ended; return its record."""
        async with asyncio.timeout(within):
            while not (-len(self.requests) <= index < len(self.requests)):
                self._new.clear()
                await self._new.wait()
            record = self.requests[index]
            await record.ended.wait()
            return record

    def add(self, record: RequestRecord) -> None:
        self.requests.append(record)
        if self.limits is not None and len(self.requests) > DEMO_RECORDS:
            del self.requests[0]  # the demo serves for days: keep the newest only
        self._new.set()

    def should_fail(self, options: SimOptions) -> bool:
        if self._failures[options.prompt] < options.fail_times:
            self._failures[options.prompt] += 1
            return True
        return False


SIMULATOR_STATE = web.AppKey("simulator_state", SimulatorState)
DEMO_RECORDS = 100  # requests a capped (demo) simulator remembers


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    source = body.get("input", body)
    messages = source.get("messages") if isinstance(source, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _content_text(content: Any) -> str:
    """A message's text: a string, or the text items/parts of a content list."""
    if isinstance(content, list):
        return "".join(
            str(item.get("text", ""))
            for item in content
            if isinstance(item, dict) and ("text" in item and item.get("type", "text") == "text")
        )
    return str(content if content is not None else "")


def _last_user(body: dict[str, Any]) -> dict[str, Any] | None:
    users = [m for m in _messages(body) if m.get("role") == "user"]
    return users[-1] if users else None


def _last_user_text(body: dict[str, Any]) -> str:
    message = _last_user(body)
    if message is not None:
        return _content_text(message.get("content", ""))
    source = body.get("input", body)
    if isinstance(source, dict) and isinstance(source.get("prompt"), str):
        return str(source["prompt"])
    return ""


def _images(body: dict[str, Any]) -> list[tuple[str, int | None]]:
    """The last user message's images: ``{"image"}`` items or ``image_url`` parts, as
    (media type, decoded bytes; ``None`` for a URL)."""
    message = _last_user(body)
    content = message.get("content") if message else None
    found: list[tuple[str, int | None]] = []
    for item in content if isinstance(content, list) else []:
        if not isinstance(item, dict):
            continue
        url = item.get("image")
        if url is None and isinstance(item.get("image_url"), dict):
            url = item["image_url"].get("url")
        if not isinstance(url, str):
            continue
        head, _, data = url.partition(",")
        if url.startswith("data:") and head.endswith(";base64"):
            size = len(data) * 3 // 4 - data[-2:].count("=")
            found.append((head[5:].removesuffix(";base64"), size))
        else:
            found.append(("url", None))
    return found


def _prefix(body: dict[str, Any]) -> str:
    """The assistant prefix of a partial-mode request, or ""."""
    messages = _messages(body)
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "assistant":
        return ""
    if last.get("partial") is True or body.get("continue_final_message") is True:
        return _content_text(last.get("content", ""))
    return ""


def _thinking(body: dict[str, Any], params: dict[str, Any], options: SimOptions) -> int:
    """How many reasoning steps the reply opens with."""
    kwargs = body.get("chat_template_kwargs")
    enabled = params.get("enable_thinking")
    if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
        enabled = kwargs["enable_thinking"]
    count = options.reasoning if options.reasoning >= 0 else (4 if enabled is True else 0)
    budget = params.get("thinking_budget")
    if isinstance(budget, int) and budget >= 0:
        count = min(count, budget)
    return count


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _Stream:
    """Writes one SSE body, in byte pieces when asked, noticing a client that left."""

    def __init__(self, response: web.StreamResponse, record: RequestRecord) -> None:
        self.response = response
        self.record = record
        split = record.options.split
        self.pieces: Iterator[int] | None = None
        if split == "odd":
            self.pieces = _cycle((1, 2, 3, 5, 7))
        elif split.isdigit() and int(split) > 0:
            self.pieces = _cycle((int(split),))

    async def write(self, text: str) -> None:
        data = text.encode()
        if self.pieces is None:
            await self.response.write(data)
            return
        pos = 0
        while pos < len(data):
            size = next(self.pieces)
            await self.response.write(data[pos : pos + size])
            pos += size


def _cycle(sizes: tuple[int, ...]) -> Iterator[int]:
    while True:
        yield from sizes


async def _pause(ms: float, step: int) -> None:
    """The pause after step ``step`` of a stream (counted from 1 over reasoning and answer
    steps together: bench/simulator.py paces by it)."""
    if ms > 0:
        await asyncio.sleep(ms / 1000)
    elif step % 64 == 0:
        await asyncio.sleep(0)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What one request is answered with: the answer steps to send (after a partial-mode
    prefix, cut by ``max_tokens``), whether they continue a prefix, how many reasoning steps
    come before them, and the finish reason."""

    steps: list[str]
    continued: bool
    reasoning: int
    finish: str
    multimodal: bool


def _plan(
    body: dict[str, Any], params: dict[str, Any], options: SimOptions, multimodal: bool
) -> _Reply:
    steps = reply_steps(options.prompt, options, image_note(_images(body)))
    prefix = _prefix(body)
    if prefix:
        steps = continue_from(steps, prefix)
    max_tokens = params.get("max_tokens")
    finish = "stop"
    if isinstance(max_tokens, int) and 0 < max_tokens < len(steps):
        steps, finish = steps[:max_tokens], "length"
    reasoning = 0 if prefix else _thinking(body, params, options)  # partial: non-thinking
    return _Reply(steps, bool(prefix), reasoning, finish, multimodal)


async def _handle(request: web.Request, kind: str, endpoint: str = "text") -> web.StreamResponse:
    state = request.app[SIMULATOR_STATE]
    try:
        body = await request.json()
    except ValueError:
        return _error(kind, 400, "InvalidParameter", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return _error(kind, 400, "InvalidParameter", "The request body must be an object.")
    options = parse_options(_last_user_text(body), request.headers.get("X-Simulator"))
    if state.limits is not None:
        options = capped(options, state.limits)
    peername = request.transport.get_extra_info("peername") if request.transport else None
    record = RequestRecord(request.path, body, options, peer=str(peername))
    state.add(record)
    if kind == "dashscope":
        serves = options.only or endpoint_for_model(str(body.get("model", "")))
        if (endpoint == "text" and serves == "multimodal") or (
            endpoint == "multimodal" and options.only == "text"
        ):
            record.end("fault")
            return _error(kind, 400, "InvalidParameter", URL_ERROR)
    fault = options.fault
    if state.should_fail(options):
        fault = "429"
    if fault in FAULTS_BEFORE:
        record.end("fault")
        status, code, message = _DS_ERRORS[fault]
        return _error(kind, status, code, message)
    if kind == "dashscope":
        params = body.get("parameters") or {}
        sse = request.headers.get("X-DashScope-SSE", "").lower() == "enable" or (
            "text/event-stream" in request.headers.get("Accept", "")
        )
    else:
        params = body
        sse = bool(body.get("stream"))
    reply = _plan(body, params, options, endpoint == "multimodal")
    if not sse:
        record.end("completed")
        return _whole(kind, body, params, reply)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream;charset=UTF-8", "Cache-Control": "no-cache"}
    )
    response.headers["X-Request-Id"] = request_id = str(uuid.uuid4())
    await response.prepare(request)
    stream = _Stream(response, record)
    try:
        writer = _dashscope_events if kind == "dashscope" else _openai_events
        await writer(stream, body, params, reply, request_id)
        if record.outcome == "running":
            await response.write_eof()
            record.end("completed")
    except (asyncio.CancelledError, ConnectionError):
        record.end("disconnected")
        raise
    finally:
        record.end("completed")
    return response


def _input_tokens(body: dict[str, Any]) -> int:
    return sum(len(_content_text(m.get("content", ""))) for m in _messages(body)) // 4 + 1


async def _mid_stream_fault(stream: _Stream, kind: str, event_id: int, request_id: str) -> None:
    """Carry out a mid-stream fault; the handler then ends (or hangs, for a stall)."""
    fault, record = stream.record.options.fault, stream.record
    if fault == "drop":
        record.end("fault")
        transport = stream.response._req.transport if stream.response._req else None
        if transport is not None:
            transport.abort()
        return
    if fault == "stall":
        await asyncio.Event().wait()  # until the client leaves (the handler is cancelled)
    if fault == "malformed":
        await stream.write(
            'data:{"output":{"text":"broken\n\n'
            if kind == "dashscope"
            else 'data: {"choices":[{"delta":\n\n'
        )
        record.end("fault")
        return
    status, code, message = _DS_ERRORS[fault]
    if kind == "dashscope":
        payload: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
        await stream.write(
            f"id:{event_id}\nevent:error\n:HTTP_STATUS/{status}\ndata:{_dumps(payload)}\n\n"
        )
    else:
        oa_code, oa_type = _OPENAI_CODES[code]
        payload = {"error": {"message": message, "type": oa_type, "code": oa_code}}
        await stream.write(f"data: {_dumps(payload)}\n\n")
    record.end("fault")


async def _dashscope_events(
    stream: _Stream,
    body: dict[str, Any],
    params: dict[str, Any],
    reply: _Reply,
    request_id: str,
) -> None:
    options = stream.record.options
    incremental = bool(params.get("incremental_output"))
    message_format = reply.multimodal or params.get("result_format", "text") == "message"
    input_tokens = _input_tokens(body)
    await _pause(options.first_delay_ms, 1)
    event_id, cumulative, sent = 0, "", 0
    thought, thinking = "", 0

    def frame(content: str, reason: str, reasoning: str | None = None) -> str:
        usage: dict[str, Any] = {
            "total_tokens": input_tokens + sent + thinking,
            "output_tokens": sent + thinking,
            "input_tokens": input_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if thinking:
            usage["output_tokens_details"] = {"reasoning_tokens": thinking}
        if message_format:
            items = [{"text": content}] if content else []
            message: dict[str, Any] = {
                "content": items if reply.multimodal else content,
                "role": "assistant",
            }
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            output: dict[str, Any] = {"choices": [{"message": message, "finish_reason": reason}]}
        else:
            output = {"finish_reason": reason, "text": content}
        data = _dumps({"output": output, "usage": usage, "request_id": request_id})
        return f"id:{event_id}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n"

    for i in range(reply.reasoning if message_format else 0):
        event_id += 1
        thinking += 1
        piece = f"Thinking {i + 1}. "
        thought += piece
        await stream.write(frame("", "null", reasoning=piece if incremental else thought))
        await _pause(options.delay_ms, event_id)
    so_far = None if incremental or not thought else thought  # cumulative: all of it, always
    fault_at = options.fault_step if options.fault and not reply.continued else -1
    for i, step in enumerate(reply.steps):
        if i == fault_at:
            await _mid_stream_fault(stream, "dashscope", event_id + 1, request_id)
            return
        event_id += 1
        sent += 1
        cumulative += step
        last = i == len(reply.steps) - 1 and not incremental
        text = step if incremental else cumulative
        await stream.write(frame(text, reply.finish if last else "null", so_far))
        stream.record.steps_sent = sent
        await _pause(options.delay_ms, event_id)  # (steps counted after the reasoning's)
    if incremental or not reply.steps:
        event_id += 1
        await stream.write(frame("" if incremental else cumulative, reply.finish, so_far))


async def _openai_events(
    stream: _Stream,
    body: dict[str, Any],
    params: dict[str, Any],
    reply: _Reply,
    request_id: str,
) -> None:
    options = stream.record.options
    model, created = body.get("model", "qwen-plus"), int(time.time())
    chunk_id = f"chatcmpl-{request_id}"
    field_name = options.reasoning_field or (
        "reasoning" if "chat_template_kwargs" in body else "reasoning_content"
    )

    def chunk(delta: dict[str, Any], reason: str | None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return (
            "data: "
            + _dumps(
                {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            )
            + "\n\n"
        )

    await _pause(options.first_delay_ms, 1)
    await stream.write(chunk({"role": "assistant", "content": ""}, None))
    for i in range(reply.reasoning):
        await stream.write(chunk({field_name: f"Thinking {i + 1}. "}, None))
        await _pause(options.delay_ms, i + 1)
    fault_at = options.fault_step if options.fault and not reply.continued else -1
    for i, step in enumerate(reply.steps):
        if i == fault_at:
            await _mid_stream_fault(stream, "openai", i, request_id)
            return
        last = i == len(reply.steps) - 1
        await stream.write(chunk({"content": step}, reply.finish if last else None))
        stream.record.steps_sent = i + 1
        await _pause(options.delay_ms, reply.reasoning + i + 1)  # (after the reasoning's)
    if not reply.steps:
        await stream.write(chunk({}, reply.finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt_tokens = _input_tokens(body)
        completion = len(reply.steps) + reply.reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        if reply.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning}
        await stream.write(
            "data: "
            + _dumps(
                {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
            + "\n\n"
        )
    await stream.write("data: [DONE]\n\n")


def _error(kind: str, status: int, code: str, message: str) -> web.Response:
    request_id = str(uuid.uuid4())
    if kind == "dashscope":
        body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    else:
        oa_code, oa_type = _OPENAI_CODES.get(code, ("invalid_request", "invalid_request_error"))
        body = {"error": {"message": message, "type": oa_type, "code": oa_code}}
    return web.json_response(body, status=status, dumps=_dumps)


def _whole(kind: str, body: dict[str, Any], params: dict[str, Any], reply: _Reply) -> web.Response:
    text, steps = "".join(reply.steps), reply.steps
    finish = reply.finish
    if kind == "dashscope":
        output: dict[str, Any]
        if reply.multimodal or params.get("result_format", "text") == "message":
            content: Any = [{"text": text}] if reply.multimodal else text
            output = {
                "choices": [
                    {"message": {"content": content, "role": "assistant"}, "finish_reason": finish}
                ]
            }
        else:
            output = {"finish_reason": finish, "text": text}
        data: dict[str, Any] = {
            "output": output,
            "usage": {
                "output_tokens": len(steps),
                "input_tokens": 1,
                "total_tokens": 1 + len(steps),
            },
            "request_id": str(uuid.uuid4()),
        }
    else:
        data = {
            "id": f"chatcmpl-{uuid.uuid4()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "qwen-plus"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": len(steps),
                "total_tokens": 1 + len(steps),
            },
        }
    return web.json_response(data, dumps=_dumps)


async def _dashscope(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "dashscope")


async def _multimodal(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "dashscope", "multimodal")


async def _openai(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "openai")


async def _requests(request: web.Request) -> web.Response:
    return web.json_response([r.public() for r in request.app[SIMULATOR_STATE].requests])


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "simulator": True})


def create_simulator_app(limits: SimLimits | None = None) -> web.Application:
    """The simulator; ``limits`` caps every request's directives (the offline demo)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SIMULATOR_STATE] = SimulatorState(limits)
    app.router.add_post(DASHSCOPE_PATH, _dashscope)
    app.router.add_post(MULTIMODAL_PATH, _multimodal)
    app.router.add_post(OPENAI_PATH, _openai)
    app.router.add_get("/_sim/requests", _requests)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, limits: SimLimits | None = None
) -> tuple[web.AppRunner, str]:
    """Start the simulator on ``host:port`` (0: a free port); return its runner and base URL."""
    runner = web.AppRunner(
        create_simulator_app(limits),
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]  # the real port when 0 was asked for
    return runner, f"http://{host}:{bound}"


def run_simulator(host: str, port: int) -> None:
    """Serve the simulator until interrupted (``python -m gateway fake-upstream``)."""
    log.info("simulator", url=f"http://{host}:{port}", dashscope=DASHSCOPE_PATH, openai=OPENAI_PATH)
    web.run_app(
        create_simulator_app(),
        host=host,
        port=port,
        access_log=None,
        print=None,
        handler_cancellation=True,
    )
