"""The send policy derived from the limits config (pure: no sockets)."""

from __future__ import annotations

from gateway.config import LimitsConfig
from gateway.send_policy import CLOSE_TIMEOUT_S, MIN_WRITER_LIMIT, SendPolicy


def test_writer_limit_is_a_sixteenth_of_the_outbox() -> None:
    """The writer (and transport high-water mark) hold a sixteenth of the outbox."""
    policy = SendPolicy.from_limits(LimitsConfig(outbox_max_bytes=1024 * 1024))
    assert policy.writer_limit == 64 * 1024
    assert policy.transport_high_water == policy.writer_limit


def test_writer_limit_has_a_floor() -> None:
    """A small outbox still gets the minimum writer limit."""
    policy = SendPolicy.from_limits(LimitsConfig(outbox_max_bytes=2048))
    assert policy.writer_limit == MIN_WRITER_LIMIT


def test_merge_size_is_bounded_by_a_quarter_of_the_outbox() -> None:
    """A merged delta holds at most max_delta_chars and at most a quarter of the outbox."""
    assert SendPolicy.from_limits(LimitsConfig()).max_merge_chars == 16 * 1024
    small = LimitsConfig(outbox_max_bytes=8192, max_delta_chars=16 * 1024)
    assert SendPolicy.from_limits(small).max_merge_chars == 2048


def test_deadline_and_close_grace_follow_the_slow_consumer_timeout() -> None:
    """The send deadline is slow_consumer_timeout_s; the close grace is at least it."""
    quick = SendPolicy.from_limits(LimitsConfig(slow_consumer_timeout_s=1.0))
    assert quick.send_timeout_s == 1.0
    assert quick.close_grace_s == CLOSE_TIMEOUT_S
    slow = SendPolicy.from_limits(LimitsConfig(slow_consumer_timeout_s=7.0))
    assert slow.close_grace_s == 7.0
    assert slow.close_timeout_s == CLOSE_TIMEOUT_S


def test_producer_bound_is_the_outbox() -> None:
    """The upstream pauses once every viewer is the outbox behind."""
    assert SendPolicy.from_limits(LimitsConfig(outbox_max_bytes=65536)).producer_bound == 65536


def test_watchdog_interval_is_a_quarter_of_the_deadline_within_bounds() -> None:
    """The watchdog looks every quarter deadline, no less than 0.05 s, no more than 1 s."""

    def interval(timeout_s: float) -> float:
        limits = LimitsConfig(slow_consumer_timeout_s=timeout_s)
        return SendPolicy.from_limits(limits).watchdog_interval_s

    assert interval(2.0) == 0.5
    assert interval(0.01) == 0.05
    assert interval(60.0) == 1.0


def test_equal_limits_share_one_policy() -> None:
    """The policy is built once per limits config, not per connection."""
    assert SendPolicy.from_limits(LimitsConfig()) is SendPolicy.from_limits(LimitsConfig())
