"""The upstream pool's pure decisions: order, weights, cooldown, recovery, readiness."""

from __future__ import annotations

import random
from collections import Counter

from gateway import config
from gateway.errors import ContentFiltered, UpstreamAuth, UpstreamError, UpstreamThrottled
from gateway.llm.pool import (
    Member,
    UpstreamPool,
    build_pool,
    is_alone,
    member_config,
    preference_for,
)


class Clock:
    """A settable POSIX clock."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def pool(*members: Member, clock: Clock | None = None, seed: int = 1) -> UpstreamPool:
    return UpstreamPool(
        members,
        cooldown_s=5,
        max_cooldown_s=60,
        clock=clock or Clock(),
        rng=random.Random(seed),
    )


def test_tiers_are_tried_in_order_of_preference() -> None:
    """Without failures, the first tier comes first, then the next."""
    p = pool(Member("a"), Member("b"), Member("c"))
    assert p.candidates([["a"], ["b"], ["c"]], "qwen-plus") == ["a", "b", "c"]
    assert p.candidates([["c"], ["a"]], "qwen-plus") == ["c", "a"]


def test_equal_preference_shares_turns_by_weight() -> None:
    """A tier of weights 3 and 1 sends about three quarters of first picks to the heavier."""
    p = pool(Member("big", weight=3), Member("small", weight=1), seed=7)
    firsts = Counter(p.candidates([["big", "small"]], "m")[0] for _ in range(4000))
    assert 0.72 < firsts["big"] / 4000 < 0.78
    assert sorted(p.candidates([["big", "small"]], "m")) == ["big", "small"]


def test_only_upstreams_serving_the_model_take_part() -> None:
    """models limits an upstream to those names; empty serves any."""
    p = pool(Member("max", models=("qwen-max",)), Member("any"))
    assert p.candidates([["max"], ["any"]], "qwen-plus") == ["any"]
    assert p.candidates([["max"], ["any"]], "qwen-max") == ["max", "any"]


def test_a_retryable_failure_cools_down_and_moves_on() -> None:
    """429 puts the upstream last for cooldown_s; the turn may move to the next."""
    clock = Clock()
    p = pool(Member("a"), Member("b"), clock=clock)
    assert p.failed("a", UpstreamThrottled()) is True
    assert p.candidates([["a"], ["b"]], "m") == ["b", "a"]
    [a, b] = p.states()
    assert not a.ok and a.cooling_until == clock.now + 5 and a.last_error == "upstream_throttled"
    assert b.ok and p.ready()
    clock.now += 5
    assert p.candidates([["a"], ["b"]], "m") == ["a", "b"]


def test_cooldown_doubles_while_failing_up_to_the_cap_and_clears_on_success() -> None:
    """5, 10, 20, 40, then 60 s (the cap); a finished reply makes it healthy at once."""
    clock = Clock()
    p = pool(Member("a"), clock=clock)
    waits = []
    for _ in range(6):
        p.failed("a", UpstreamError("boom"))
        [state] = p.states()
        waits.append(state.cooling_until - clock.now)
        clock.now = state.cooling_until  # tried again when it ran out, and failed again
    assert waits == [5, 10, 20, 40, 60, 60]
    p.succeeded("a")
    [state] = p.states()
    assert state.ok and state.failures == 0 and state.last_error is None


def test_auth_and_filter_failures_neither_move_nor_cool() -> None:
    """upstream_auth and content_filtered: no failover, no cooldown, the code is kept."""
    p = pool(Member("a"), Member("b"))
    assert p.failed("a", UpstreamAuth()) is False
    assert p.failed("a", ContentFiltered()) is False
    [a, _] = p.states()
    assert a.ok and a.last_error == "content_filtered"
    assert p.candidates([["a"], ["b"]], "m") == ["a", "b"]


def test_when_all_cool_down_they_are_tried_soonest_ready_first() -> None:
    """Nothing healthy: the turn still has somewhere to go, the least recently failed last."""
    clock = Clock()
    p = pool(Member("a"), Member("b"), clock=clock)
    p.failed("a", UpstreamError())
    p.failed("a", UpstreamError())  # 10 s
    p.failed("b", UpstreamError())  # 5 s
    assert p.candidates([["a"], ["b"]], "m") == ["b", "a"]
    assert not p.ready()


def test_exclusions_and_continuation_capability() -> None:
    """Tried upstreams are skipped; a continuation goes only where prefixes are taken."""
    p = pool(Member("a"), Member("b", can_continue=False), Member("c"))
    assert p.candidates([["a"], ["b"], ["c"]], "m", exclude=["a"]) == ["b", "c"]
    assert p.candidates([["a"], ["b"], ["c"]], "m", exclude=["a"], continuing=True) == ["c"]


def test_readyz_state_shape() -> None:
    """ok, or cooling_down with the time it ends (UTC), its failures and last error code."""
    clock = Clock()
    p = pool(Member("a"), Member("b"), clock=clock)
    p.failed("a", UpstreamThrottled())
    assert [s.as_json() for s in p.states()] == [
        {
            "state": "cooling_down",
            "until": "2027-01-15T08:00:05Z",
            "failures": 1,
            "last_error": "upstream_throttled",
        },
        {"state": "ok"},
    ]


def test_pool_from_the_config() -> None:
    """default is the [upstream] table; pooled clients do not retry; openai continues only
    with continuation = vllm."""
    cfg = config.loads(
        """
[upstream]
kind = "dashscope"
api_key = "sk-a"
max_retries = 2
[upstreams.local]
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
weight = 2
models = ["qwen-plus"]
[assistants.support]
upstreams = [["default", "local"]]
"""
    )
    p = build_pool(cfg)
    assert p.members["default"] == Member("default", 1, (), True)
    assert p.members["local"] == Member("local", 2, ("qwen-plus",), False)
    assert preference_for(cfg, "support") == (("default", "local"),)
    assert preference_for(cfg, "default") == (("default",),)
    local = member_config(cfg, "local")
    assert (local.kind, local.base_url, local.max_retries) == (
        "openai",
        cfg.upstreams["local"].base_url,
        0,
    )
    assert local.api_key == cfg.upstreams["local"].api_key
    assert local.first_byte_timeout_s == cfg.upstream.first_byte_timeout_s
    assert member_config(cfg, "default").max_retries == 0
    assert not is_alone(preference_for(cfg, "support"))
    assert is_alone(preference_for(cfg, "default"))  # version 1: one upstream, retries kept
    assert member_config(cfg, "default", alone=True).max_retries == 2
