"""The producer: reads one upstream reply into its log, step by step, with backpressure.

This is the only place where upstream events become numbered steps. Before each read from
the upstream the client asks for room (:meth:`ReplyLog.room`): when every viewer
is more than the outbox bound behind, the upstream read pauses, so TCP pushes back on the
upstream instead of the gateway buffering a reply nobody can read. The wait comes once the
events of the previous read are all in the log, so a paused reply holds no decoded events,
only aiohttp's small read buffer (the log may pass the bound by one read, 16 KB).
"""

from __future__ import annotations

import contextlib
import functools
import time

from .errors import UpstreamError
from .llm.events import ChatRequest, Finish, Step, Upstream
from .replies import ReplyLog, ReplyState


async def produce(reply: ReplyLog, upstream: Upstream, request: ChatRequest, bound: int) -> None:
    """Stream ``request`` into ``reply`` and end it; cancellation closes the upstream at once."""
    try:
        room = functools.partial(reply.room, bound)
        async with contextlib.aclosing(upstream.stream(request, room)) as events:
            async for event in events:
                if reply.ended:  # stopped while the event was on its way
                    return
                if isinstance(event, Step):
                    if reply.first_step_at is None:
                        reply.first_step_at = time.time()
                    reply.append(event.text)
                elif isinstance(event, Finish):
                    reply.usage.input_tokens = event.input_tokens
                    reply.usage.output_tokens = event.output_tokens
                    reply.upstream_request_id = event.request_id
                    reply.finish(ReplyState.COMPLETED, event.finish_reason)
                    return
        # The stream ended without a Finish: the client contract says it raises; be safe.
        reply.finish(
            ReplyState.FAILED, "error", error=UpstreamError("the model's reply ended early")
        )
    except UpstreamError as exc:
        reply.upstream_request_id = exc.request_id
        reply.finish(ReplyState.FAILED, "error", error=exc)
