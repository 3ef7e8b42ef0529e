"""What a finished reply reports: its metrics, its usage record, its summary line's fields."""

from __future__ import annotations

import datetime as dt

from structlog.testing import capture_logs

from gateway.errors import UpstreamTimeout
from gateway.metrics import Metrics
from gateway.replies import ReplyLog, ReplyState, StepKind
from gateway.reply_report import observe, summary_fields, usage_record
from gateway.usage import TokenCounts, UsageRecord

STARTED = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


def finished_reply() -> ReplyLog:
    """A reply of two answer steps and one reasoning step, 0.25 s to its first step."""
    reply = ReplyLog("m1", "c1", "alice", "u1", "qwen-plus", started_at=STARTED)
    reply.append("think", StepKind.REASONING)
    reply.mark_first_step(STARTED + 0.25)
    reply.append("Hello, ")
    reply.append("world")
    reply.finish(
        ReplyState.COMPLETED,
        "stop",
        usage=TokenCounts(12, 57, 3),
        request_id="req-1",
        finished_at=STARTED + 2.0,
    )
    return reply


def test_observe_counts_a_finished_reply_and_takes_it_out_of_flight() -> None:
    """In flight back to 0; steps, finish reason, first delta and duration are counted."""
    metrics = Metrics()
    metrics.replies_in_flight.inc()
    observe(metrics, finished_reply())
    sample = metrics.registry.get_sample_value
    assert sample("gateway_replies_in_flight") == 0
    assert metrics.steps == 3
    assert sample("gateway_replies_total", {"finish_reason": "stop"}) == 1
    assert sample("gateway_time_to_first_delta_seconds_sum") == 0.25
    assert sample("gateway_reply_duration_seconds_sum") == 2.0
    assert sample("gateway_upstream_errors_total", {"code": "upstream_timeout"}) is None


def test_observe_counts_an_upstream_failure_by_its_code() -> None:
    """A failed reply with no first step counts its error code and no time to first delta."""
    metrics = Metrics()
    reply = ReplyLog("m1", "c1", "alice", "u1", "qwen-plus", started_at=STARTED)
    reply.finish(ReplyState.FAILED, "error", error=UpstreamTimeout(), finished_at=STARTED + 1)
    observe(metrics, reply)
    sample = metrics.registry.get_sample_value
    assert sample("gateway_upstream_errors_total", {"code": "upstream_timeout"}) == 1
    assert sample("gateway_replies_total", {"finish_reason": "error"}) == 1
    assert sample("gateway_time_to_first_delta_seconds_count") == 0


def test_summary_fields_say_how_the_reply_ended_its_size_and_timing() -> None:
    """The line holds the end, the counts, the rounded timings and no error."""
    assert summary_fields(finished_reply()) == {
        "finish_reason": "stop",
        "state": "completed",
        "steps": 3,
        "frames": 0,
        "merged": 0,
        "chars": len("Hello, world"),
        "first_step_s": 0.25,
        "seconds": 2.0,
        "upstream_request_id": "req-1",
        "error": None,
    }


def test_summary_fields_of_a_failure_name_the_upstream_cause() -> None:
    """A failed reply's line carries the error's code, message, status and cause."""
    reply = ReplyLog("m1", "c1", "alice", "u1", "qwen-plus", started_at=STARTED)
    error = UpstreamTimeout(status=504, cause="ReadTimeout")
    reply.finish(ReplyState.FAILED, "error", error=error, finished_at=STARTED + 1)
    fields = summary_fields(reply)
    assert fields["first_step_s"] is None
    assert fields["error"] == "upstream_timeout"
    assert fields["upstream_status"] == 504 and fields["cause"] == "ReadTimeout"


def test_usage_record_is_the_replys_usage_on_its_day_and_counts_its_tokens() -> None:
    """The record holds the counts, model, assistant, user, address and the end's UTC day."""
    metrics = Metrics()
    record = usage_record(metrics, finished_reply(), "default", "203.0.113.7")
    day = dt.datetime.fromtimestamp(STARTED + 2.0, dt.UTC).date()
    assert record == UsageRecord(
        12, 57, 3, False, "qwen-plus", "default", "alice", day, "203.0.113.7"
    )
    labels = {"assistant": "default", "model": "qwen-plus", "kind": "output"}
    assert metrics.registry.get_sample_value("gateway_tokens_total", labels) == 57


def test_usage_record_that_cannot_be_counted_is_none_and_logged() -> None:
    """A count the token counter refuses (negative) gives None and one error line."""
    reply = ReplyLog("m1", "c1", "alice", "u1", "qwen-plus", started_at=STARTED)
    reply.finish(ReplyState.COMPLETED, "stop", usage=TokenCounts(-1, 0), finished_at=STARTED)
    with capture_logs() as logs:
        assert usage_record(Metrics(), reply, "default", None) is None
    assert [(e["event"], e["log_level"]) for e in logs] == [("usage not recorded", "error")]
    assert logs[0]["message_id"] == "m1"
