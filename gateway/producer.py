"""The producer: reads one upstream reply into its log, step by step, with backpressure.

This is the only place where upstream events become numbered steps. Before each read from
the upstream the client asks the log for backpressure (:meth:`ReplyLog.backpressure`): when
every viewer is more than the send policy's producer bound behind, the upstream read pauses,
so TCP pushes back on the upstream instead of the gateway buffering a reply nobody can read.
The wait comes once the events of the previous read are all in the log, so a paused reply
holds no decoded events, only aiohttp's small read buffer (the log may pass the bound by one
read).

Reasoning (a reasoning model's thinking) becomes steps of its own kind, numbered with the
answer's; with ``show_reasoning`` off it is dropped as it arrives: not in the log, so not
sent, not numbered and not kept in history.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncGenerator

from .errors import UpstreamError
from .llm.events import ChatRequest, Finish, Reasoning, Step, Upstream, UpstreamEvent
from .llm.pool import PooledUpstream, PoolTrace
from .replies import REASONING, ReplyLog, ReplyState
from .usage import estimated_usage, reply_usage, reported_usage, request_text


async def produce(
    reply: ReplyLog,
    upstream: Upstream,
    request: ChatRequest,
    bound: int,
    *,
    show_reasoning: bool = True,
) -> None:
    """Stream ``request`` into ``reply`` and end it; cancellation closes the upstream at once."""
    if isinstance(upstream, PooledUpstream):
        await _produce_pooled(reply, upstream, request, bound, show_reasoning)
        return
    try:
        backpressure = functools.partial(reply.backpressure, bound)
        stream = upstream.stream(request, backpressure)
        finish = await _read_steps(reply, stream, show_reasoning)
        if reply.ended:  # stopped while an event was on its way
            return
        if finish is not None:
            reply.finish(
                ReplyState.COMPLETED,
                finish.finish_reason,
                usage=reported_usage(finish) or estimated_usage(request, reply.text),
                request_id=finish.request_id,
            )
            return
        # The stream ended without a Finish: the client contract says it raises; be safe.
        reply.finish(
            ReplyState.FAILED,
            "error",
            error=UpstreamError("the model's reply ended early"),
            usage=estimated_usage(request, reply.text),
        )
    except UpstreamError as exc:
        reply.finish(
            ReplyState.FAILED,
            "error",
            error=exc,
            request_id=exc.request_id,
            usage=estimated_usage(request, reply.text),
        )


async def _produce_pooled(
    reply: ReplyLog,
    upstream: PooledUpstream,
    request: ChatRequest,
    bound: int,
    show_reasoning: bool,
) -> None:
    """:func:`produce` over a pool: the reply ends once the stream is closed, when the trace
    holds every call, so its usage counts each one and ``done.continued`` is known."""
    trace = PoolTrace()
    finish: Finish | None = None
    error: UpstreamError | None = None
    try:
        backpressure = functools.partial(reply.backpressure, bound)
        stream = upstream.stream(request, backpressure, trace=trace)
        finish = await _read_steps(reply, stream, show_reasoning)
    except UpstreamError as exc:
        error = exc
    if reply.ended:
        return
    text = request_text(m.content for m in request.messages)
    usage = reply_usage(trace.calls, text, reply.text)
    reply.mark_continued(trace.continued)
    if finish is not None:
        reply.finish(
            ReplyState.COMPLETED, finish.finish_reason, usage=usage, request_id=finish.request_id
        )
        return
    if error is None:  # the client contract says it raises; be safe
        error = UpstreamError("the model's reply ended early")
    reply.finish(ReplyState.FAILED, "error", error=error, request_id=error.request_id, usage=usage)


async def _read_steps(
    reply: ReplyLog, stream: AsyncGenerator[UpstreamEvent, None], show_reasoning: bool
) -> Finish | None:
    """Append the stream's steps to ``reply`` until its Finish (returned) or its end (None),
    or until the reply is ended by someone else; the stream is closed either way."""
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if reply.ended:  # stopped while the event was on its way
                return None
            if isinstance(event, Step):
                if reply.first_step_at is None:
                    reply.mark_first_step(time.time())
                reply.append(event.text)
            elif isinstance(event, Reasoning):
                if show_reasoning:
                    if reply.first_step_at is None:
                        reply.mark_first_step(time.time())
                    reply.append(event.text, REASONING)
            elif isinstance(event, Finish):
                return event
    return None
