"""Usage accounting: counts, the estimate for replies stopped early, the usage endpoint's
query and body."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.errors import BadRequest, Forbidden
from gateway.metrics import Metrics
from gateway.usage import (
    TokenCounts,
    UpstreamCall,
    UsageEntry,
    UsageQuery,
    UsageRecord,
    UsageRow,
    aggregate,
    count_tokens,
    estimate_tokens,
    parse_usage_query,
    reply_usage,
    seconds_to_next_day,
    single_call,
    usage_body,
    utc_day,
)

DAY = dt.date(2026, 12, 2)


def test_estimate_counts_cjk_at_one_and_a_half_characters_and_the_rest_at_four() -> None:
    """English text at 4 characters a token, Chinese at 1.5, rounded up, nothing for nothing."""
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("你好世") == 2
    assert estimate_tokens("你好，世界") == 4  # the full-width comma is CJK too
    assert estimate_tokens("ab你好") == 2  # 0.5 + 1.33 -> 2
    assert estimate_tokens("🚀" * 8) == 2  # other scripts: 4 characters a token


def test_upstream_counts_take_reasoning_out_of_the_output() -> None:
    """Services count reasoning inside output tokens: the record keeps them apart."""
    counts = TokenCounts.from_upstream(10, 50, 30)
    assert (counts.input_tokens, counts.output_tokens, counts.reasoning_tokens) == (10, 20, 30)
    assert counts.total == 60
    assert TokenCounts.from_upstream(None, None, None) == TokenCounts(0, 0, None)
    assert TokenCounts.from_upstream(5, 3, 9).output_tokens == 0  # never negative


def test_a_call_that_reported_nothing_is_estimated_not_free() -> None:
    """No counts at all in the upstream's finish: None, so the estimate applies."""
    assert TokenCounts.reported(None, None, None) is None
    assert TokenCounts.reported(3, None, None) == TokenCounts(3, 0, None)
    usage = reply_usage([single_call(TokenCounts.reported(None, None, None), "a" * 8)], "", "a" * 8)
    assert usage == TokenCounts(0, 2, None, estimated=True)


def test_done_usage_shape() -> None:
    """done.usage: counts, reasoning when known, estimated only when estimated."""
    assert TokenCounts(12, 57).as_json() == {"input_tokens": 12, "output_tokens": 57}
    assert TokenCounts(1, 2, 3, estimated=True).as_json() == {
        "input_tokens": 1,
        "output_tokens": 2,
        "reasoning_tokens": 3,
        "estimated": True,
    }


def test_a_reply_with_reported_usage_records_it_exactly() -> None:
    """The last usage the upstream reported wins over any estimate."""
    reported = TokenCounts(12, 57)
    assert reply_usage([single_call(reported, "x" * 999)], "y" * 999, "x" * 999) == reported


def test_a_reply_stopped_before_any_report_is_estimated() -> None:
    """Cancelled with no usage: input from the request, output from what streamed, marked."""
    usage = reply_usage([single_call(None, "a" * 40, "r" * 8)], "q" * 400, "a" * 40, "r" * 8)
    assert usage == TokenCounts(100, 10, 2, estimated=True)
    assert usage.as_json()["estimated"] is True


def test_a_continued_reply_counts_both_calls() -> None:
    """The failed call is estimated; the continuation's input includes the prefix it got."""
    answer = "a" * 80 + "b" * 40
    calls = [
        UpstreamCall("primary", 0, 80),
        UpstreamCall("backup", 80, 120, reported=TokenCounts(130, 10)),
    ]
    usage = reply_usage(calls, "q" * 400, answer)
    assert usage == TokenCounts(100 + 130, 20 + 10, None, estimated=True)
    # Without the report, the second call's input is the request plus the 80-character prefix.
    calls[1] = UpstreamCall("backup", 80, 120)
    assert reply_usage(calls, "q" * 400, answer) == TokenCounts(220, 30, None, True)


def test_a_reply_that_never_reached_an_upstream_costs_nothing() -> None:
    """No call (refused, or cancelled while queued): zero, not an estimate."""
    assert reply_usage([], "q" * 400, "") == TokenCounts()


def test_utc_days_and_the_wait_until_the_next() -> None:
    """Days are UTC; the wait runs to the next UTC midnight, at least a second."""
    noon = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC).timestamp()
    assert utc_day(noon) == DAY
    assert seconds_to_next_day(noon) == 12 * 3600
    assert seconds_to_next_day(noon + 12 * 3600 - 0.25) == 1
    assert utc_day(noon + 12 * 3600) == DAY + dt.timedelta(days=1)


def test_the_remembered_day_ends_at_its_midnight_both_ways() -> None:
    """utc_day keeps the last day it built: a time on either side of it is still its own day."""
    midnight = dt.datetime(2026, 12, 3, tzinfo=dt.UTC).timestamp()
    for ts, day in (
        (midnight - 1e-6, DAY),
        (midnight, DAY + dt.timedelta(days=1)),
        (midnight - 1e-6, DAY),  # back again: not the day remembered
        (midnight - 86400, DAY),
        (midnight - 86400 - 1e-6, DAY - dt.timedelta(days=1)),
        (midnight + 86400 - 1e-6, DAY + dt.timedelta(days=1)),
    ):
        assert utc_day(ts) == day, ts
        assert utc_day(ts) == dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _entry(day: dt.date, user: str, assistant: str, model: str, i: int, o: int) -> UsageEntry:
    entry = UsageEntry(day, user, assistant, model)
    entry.add(UsageRecord(i, o, None, False, model, assistant, user, day))
    return entry


def test_aggregate_groups_and_orders() -> None:
    """Days in order; other groups by tokens used, most first."""
    d2 = DAY + dt.timedelta(days=1)
    entries = [
        _entry(d2, "bob", "default", "qwen-plus", 5, 5),
        _entry(DAY, "alice", "default", "qwen-plus", 1, 2),
        _entry(DAY, "bob", "support", "qwen-max", 100, 1),
    ]
    by_day = aggregate(entries, "day")
    assert [(r.key, r.replies, r.input_tokens) for r in by_day] == [
        ("2026-12-02", 2, 101),
        ("2026-12-03", 1, 5),
    ]
    by_user = aggregate(entries, "user")
    assert [(r.key, r.total_tokens) for r in by_user] == [("bob", 111), ("alice", 3)]
    assert [r.key for r in aggregate(entries, "model")] == ["qwen-max", "qwen-plus"]
    assert [r.key for r in aggregate(entries, "assistant")] == ["support", "default"]


def test_query_defaults_to_today_by_day() -> None:
    """No parameters: today, grouped by day, the caller's own usage."""
    query = parse_usage_query({}, caller="alice", is_admin=False, today=DAY, retention_days=90)
    assert query == UsageQuery(DAY, DAY, "day", "alice")


def test_an_admin_sees_everyone_and_may_narrow_to_one_user() -> None:
    """Admin: no user filter unless asked for."""
    params = {"from": "2026-11-01", "to": "2026-12-01", "group_by": "user"}
    query = parse_usage_query(params, caller="root", is_admin=True, today=DAY, retention_days=90)
    assert (query.start, query.end, query.group_by, query.user) == (
        dt.date(2026, 11, 1),
        dt.date(2026, 12, 1),
        "user",
        None,
    )
    assert len(query.days()) == 31
    narrowed = parse_usage_query(
        {"user": "bob"}, caller="root", is_admin=True, today=DAY, retention_days=90
    )
    assert narrowed.user == "bob"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "2026-13-01"}, "from:"),
        ({"to": "yesterday"}, "to:"),
        ({"from": "2026-12-2"}, "from:"),
        ({"group_by": "ip"}, "group_by:"),
        ({"limit": "3"}, "limit: unknown parameter"),
    ],
)
def test_bad_queries_name_the_parameter(params, named) -> None:
    """Every bad parameter is a 400 whose message starts with its name."""
    with pytest.raises(BadRequest) as caught:
        parse_usage_query(params, caller="alice", is_admin=False, today=DAY, retention_days=90)
    assert caught.value.message.startswith(named)
    assert caught.value.http_status == 400


def test_a_range_is_cut_to_the_retention_window() -> None:
    """from before the oldest day kept starts there; from after to has no days."""
    params = {"from": "2000-01-01", "to": "2026-12-02"}
    query = parse_usage_query(params, caller="alice", is_admin=False, today=DAY, retention_days=90)
    assert query.start == dt.date(2026, 12, 2) - dt.timedelta(days=89)
    assert len(query.days()) == 90
    params = {"from": "2026-12-03", "to": "2026-12-02"}
    query = parse_usage_query(params, caller="alice", is_admin=False, today=DAY, retention_days=90)
    assert query.days() == []


def test_another_users_usage_is_forbidden_to_a_non_admin() -> None:
    """user=bob from alice is 403 naming the parameter."""
    with pytest.raises(Forbidden) as caught:
        parse_usage_query(
            {"user": "bob"}, caller="alice", is_admin=False, today=DAY, retention_days=90
        )
    assert caught.value.message.startswith("user: only an admin")
    assert caught.value.http_status == 403


def test_body_has_rows_and_total() -> None:
    """The contract's shape; a user's own group_by=user is one row even with nothing used."""
    query = UsageQuery(DAY, DAY, "model", None)
    rows = [UsageRow("qwen-max", 2, 10, 20, 5, 1), UsageRow("qwen-plus", 1, 1, 1, 0, 0)]
    body = usage_body(query, rows)
    assert body == {
        "from": "2026-12-02",
        "to": "2026-12-02",
        "group_by": "model",
        "rows": [
            {
                "key": "qwen-max",
                "replies": 2,
                "input_tokens": 10,
                "output_tokens": 20,
                "reasoning_tokens": 5,
                "estimated_replies": 1,
            },
            {
                "key": "qwen-plus",
                "replies": 1,
                "input_tokens": 1,
                "output_tokens": 1,
                "reasoning_tokens": 0,
                "estimated_replies": 0,
            },
        ],
        "total": {
            "replies": 3,
            "input_tokens": 11,
            "output_tokens": 21,
            "reasoning_tokens": 5,
            "estimated_replies": 1,
        },
    }
    own = usage_body(UsageQuery(DAY, DAY, "user", "alice"), [])
    assert [r["key"] for r in own["rows"]] == ["alice"] and own["total"]["replies"] == 0


def test_recorded_tokens_reach_the_prometheus_counter() -> None:
    """gateway_tokens_total{assistant,model,kind} grows by each kind's count."""
    metrics = Metrics()
    record = UsageRecord(12, 57, 3, False, "qwen-plus", "default", "alice", DAY)
    count_tokens(metrics, record)
    count_tokens(metrics, record)
    text = metrics.render().decode()
    assert 'gateway_tokens_total{assistant="default",kind="input",model="qwen-plus"} 24.0' in text
    assert 'gateway_tokens_total{assistant="default",kind="output",model="qwen-plus"} 114.0' in text
    assert (
        'gateway_tokens_total{assistant="default",kind="reasoning",model="qwen-plus"} 6.0' in text
    )
