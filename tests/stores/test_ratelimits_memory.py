"""The memory rate limiter: a bucket of messages_per_minute tokens per user."""

from __future__ import annotations

from gateway.stores.ratelimits_memory import MemoryRateLimiter


async def test_a_user_gets_per_minute_messages_then_a_refusal_and_others_are_apart() -> None:
    """With 2 a minute, a user's third message at once is refused; another user is not."""
    limiter = MemoryRateLimiter(2)
    assert [await limiter.allow("alice") for _ in range(3)] == [True, True, False]
    assert await limiter.allow("bob")


async def test_zero_a_minute_turns_the_limit_off() -> None:
    """messages_per_minute = 0 allows every message."""
    limiter = MemoryRateLimiter(0)
    assert all([await limiter.allow("alice") for _ in range(100)])
