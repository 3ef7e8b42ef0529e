"""The producer: reads one upstream reply into its log, step by step, with backpressure.

This is the only place where upstream events become numbered steps. After each step the
producer waits for room (:meth:`ReplyLog.wait_for_room`): when every viewer is more than
the outbox bound behind, the upstream read pauses, so TCP pushes back on the upstream
instead of the gateway buffering a reply nobody can read.
"""

from __future__ import annotations

import contextlib
import time

from .errors import UpstreamError
from .llm.events import ChatRequest, Finish, Step, Upstream
from .replies import ReplyLog, ReplyState


async def produce(reply: ReplyLog, upstream: Upstream, request: ChatRequest, bound: int) -> None:
    """Stream ``request`` into ``reply`` and end it; cancellation closes the upstream at once."""
    try:
        async with contextlib.aclosing(upstream.stream(request)) as events:
            async for event in events:
                if reply.ended:  # stopped while the event was on its way
                    return
                if isinstance(event, Step):
                    if reply.first_step_at is None:
                        reply.first_step_at = time.time()
                    reply.append(event.text)
                    await reply.wait_for_room(bound)
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
