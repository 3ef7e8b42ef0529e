"""What a finished reply reports, once, as its task ends: the metrics it observes, its usage
record (counted into the token counters; the settling stores it for quotas), and the
fields of its one ``reply`` log line.

Functions of the finished :class:`~gateway.replies.ReplyLog` and the metrics, no I/O:
the supervisor calls them and writes the line.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from .errors import failure_fields
from .metrics import Metrics
from .replies import ReplyLog
from .usage import UsageRecord, count_tokens, utc_day

log = structlog.get_logger("gateway.supervisor")  # the reply's lines, under one name


def observe(metrics: Metrics, reply: ReplyLog) -> None:
    """Take ``reply`` out of ``gateway_replies_in_flight`` and count its end: steps, finish
    reason, time to the first delta, duration, upstream error."""
    m = metrics
    m.replies_in_flight.dec()
    m.steps += reply.head
    m.replies.labels(reply.finish_reason or "error").inc()
    if reply.first_step_at is not None:
        m.time_to_first_delta.observe(reply.first_step_at - reply.started_at)
    if reply.finished_at is not None:
        m.reply_duration.observe(reply.finished_at - reply.started_at)
    if reply.error is not None:
        m.upstream_errors.labels(reply.error.code).inc()


def summary_fields(reply: ReplyLog) -> dict[str, Any]:
    """The fields of ``reply``'s one ``reply`` line: how it ended, its size, its timing (to
    now if it has no end time), the upstream's request id and why it failed."""
    return {
        "finish_reason": reply.finish_reason,
        "state": str(reply.state),
        "steps": reply.head,
        "frames": reply.frames_sent,
        "merged": reply.frames_merged,
        "chars": reply.content_length,
        "first_step_s": round(reply.first_step_at - reply.started_at, 4)
        if reply.first_step_at
        else None,
        "seconds": round((reply.finished_at or time.time()) - reply.started_at, 3),
        "upstream_request_id": reply.upstream_request_id,
        **failure_fields(reply.error),
    }


def usage_record(
    metrics: Metrics, reply: ReplyLog, assistant: str, address: str | None
) -> UsageRecord | None:
    """The reply's usage for its day (quotas read it), added to the token counters now;
    None (logged) if it cannot be made."""
    try:
        record = UsageRecord.of(
            reply.usage,
            model=reply.model,
            assistant=assistant,
            user=reply.owner,
            day=utc_day(reply.finished_at),
            address=address,
        )
        count_tokens(metrics, record)
    except Exception:
        log.exception("usage not recorded", message_id=reply.message_id)
        return None
    return record
