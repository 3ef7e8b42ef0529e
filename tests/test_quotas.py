"""Quotas: the pure decision at a turn's start, and the anonymous limits per address."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway import config
from gateway.errors import QuotaExceeded, error_for_code
from gateway.quotas import AddressLimits, QuotaLimits, check_quota, remaining_today
from gateway.stores.window_counters_memory import MemoryWindowCounter
from gateway.usage import SpentToday

NOON = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC).timestamp()
LIMITS = QuotaLimits(per_user=1000, per_assistant=5000, per_address=300)


def test_under_every_quota_a_turn_goes_ahead() -> None:
    """Spent below each limit: no refusal."""
    assert check_quota(SpentToday(999, 4999, 299), LIMITS, anonymous=True, now=NOON) is None


def test_no_quota_set_means_no_refusal_and_no_read() -> None:
    """All zeros: nothing refused, and `any` tells the caller not to read today's spend."""
    assert not QuotaLimits().any
    assert (
        check_quota(SpentToday(10**9, 10**9, 10**9), QuotaLimits(), anonymous=True, now=NOON)
        is None
    )


@pytest.mark.parametrize(
    ("spent", "anonymous", "quota"),
    [
        (SpentToday(1000, 0, 0), False, "user"),
        (SpentToday(1000, 9999, 9999), True, "user"),
        (SpentToday(0, 0, 300), True, "address"),
        (SpentToday(0, 5000, 300), True, "address"),
        (SpentToday(0, 5000, 0), False, "assistant"),
        (SpentToday(0, 5000, 300), False, "assistant"),
    ],
)
def test_the_narrowest_spent_quota_refuses(spent, anonymous, quota) -> None:
    """At or past a limit: quota_exceeded naming user, address (anonymous only) or assistant."""
    error = check_quota(spent, LIMITS, anonymous=anonymous, now=NOON)
    assert isinstance(error, QuotaExceeded)
    assert error.quota == quota
    assert (error.code, error.retryable, error.http_status) == ("quota_exceeded", False, 429)


def test_retry_after_runs_to_the_next_utc_day() -> None:
    """retry_after_s is the wait until 00:00 UTC, in the frame's and the body's fields."""
    error = check_quota(SpentToday(1000, 0, 0), LIMITS, anonymous=False, now=NOON + 0.5)
    assert error is not None
    assert error.retry_after_s == 12 * 3600
    assert error.fields() == {"retry_after_s": 43200}
    assert "00:00 UTC" in error.message


def test_a_quota_error_read_back_from_shared_state_rebuilds() -> None:
    """error_for_code rebuilds quota_exceeded like every other code (no missing argument)."""
    error = error_for_code("quota_exceeded", "used up")
    assert isinstance(error, QuotaExceeded) and error.message == "used up"


def test_remaining_today_is_the_narrowest_left() -> None:
    """What the page shows: the least left under the quotas that apply, never negative."""
    assert remaining_today(SpentToday(100, 4950, 0), LIMITS, anonymous=False) == 50
    assert remaining_today(SpentToday(100, 0, 250), LIMITS, anonymous=True) == 50
    assert remaining_today(SpentToday(2000, 0, 0), LIMITS, anonymous=False) == 0
    assert remaining_today(SpentToday(), QuotaLimits(), anonymous=True) is None


def test_limits_come_from_the_config() -> None:
    """The user's and address's limits from [limits], the assistant's from its table."""
    cfg = config.loads(
        """
[limits]
tokens_per_user_per_day = 100
anonymous_tokens_per_ip_per_day = 50
[assistants.support]
tokens_per_day = 1000
"""
    )
    assert QuotaLimits.for_assistant(cfg, "support") == QuotaLimits(100, 1000, 50)
    assert QuotaLimits.for_assistant(cfg, "default") == QuotaLimits(100, 0, 50)


class Clock:
    """A settable clock (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_client_dropping_its_cookie_50_times_gets_only_the_capped_ids() -> None:
    """New anonymous ids per address stop at the cap for an hour, other addresses unaffected."""
    clock = Clock()
    limits = AddressLimits(MemoryWindowCounter(clock), messages_per_minute=0, ids_per_hour=5)
    granted = [await limits.allow_new_id("203.0.113.7") for _ in range(50)]
    assert granted == [True] * 5 + [False] * 45
    assert await limits.allow_new_id("198.51.100.1")
    clock.now += 3599
    assert not await limits.allow_new_id("203.0.113.7")
    clock.now += 1
    assert await limits.allow_new_id("203.0.113.7")


async def test_anonymous_messages_per_minute_per_address() -> None:
    """At most N messages in any 60 s from one address; zero means no limit."""
    clock = Clock()
    limits = AddressLimits(MemoryWindowCounter(clock), messages_per_minute=3, ids_per_hour=0)
    assert [await limits.allow_message("::1") for _ in range(4)] == [True, True, True, False]
    clock.now += 30
    assert not await limits.allow_message("::1")
    clock.now += 30
    assert await limits.allow_message("::1")
    assert all([await limits.allow_new_id("::1") for _ in range(100)])
