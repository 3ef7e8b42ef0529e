"""Usage accounting (contract section 12): what a reply cost, and spend read back per day.

Pure: token counts and their ``done.usage`` shape, the estimate for a reply stopped early,
the record kept per reply, the ``GET /api/v1/usage`` query and body. Storage is behind
:class:`gateway.stores.usage.UsageStore` (memory or Redis).

Counting. ``output_tokens`` is the answer's tokens and ``reasoning_tokens`` the thinking's,
kept apart, so ``input + output + reasoning`` is what the upstream bills and what quotas
count. DashScope and OpenAI-compatible services report reasoning *inside* their output count
(``output_tokens_details.reasoning_tokens``, ``completion_tokens_details``);
:meth:`TokenCounts.from_upstream` takes it out.

The estimate. A reply stopped early (cancel, interrupt, orphaned, failed) records the last
usage its upstream reported; when there was none, an estimate marked ``estimated``: input
from the request's characters, output from the streamed characters. Qwen's tokenizer takes
1.5 to 1.8 Chinese characters per token, and about a word or word root per token in English
(Alibaba Cloud Model Studio, "计量计费", help.aliyun.com/zh/dashscope/developer-reference/
tongyi-thousand-questions-metering-and-billing). So CJK characters (Han, kana, Hangul,
full-width forms) count 1 token per :data:`CJK_CHARS_PER_TOKEN` (1.5, the end that does not
under-count) and everything else 1 per :data:`OTHER_CHARS_PER_TOKEN` (4), rounded up. A
reply continued on another upstream (section 13) counts every call: each one's reported
usage, or its own estimate (its input includes the text it was asked to continue).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .errors import BadRequest, Forbidden
from .llm.events import ChatRequest, Finish
from .metrics import Metrics

GroupBy = Literal["user", "assistant", "model", "day"]
GROUPS: tuple[str, ...] = get_args(GroupBy)

CJK_CHARS_PER_TOKEN = 1.5
OTHER_CHARS_PER_TOKEN = 4.0
_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the module's rule (0 for empty text)."""
    if not text:
        return 0
    cjk = 0 if text.isascii() else len(text) - len(_CJK.sub("", text))
    return math.ceil(cjk / CJK_CHARS_PER_TOKEN + (len(text) - cjk) / OTHER_CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """One reply's (or call's) tokens; ``reasoning_tokens`` is None when not reported.

    :meth:`as_json` is the ``done.usage`` object: the counts, ``reasoning_tokens`` when
    known, and ``"estimated": true`` only for an estimate."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int | None = None
    estimated: bool = False

    @classmethod
    def from_upstream(
        cls, input_tokens: int | None, output_tokens: int | None, reasoning_tokens: int | None
    ) -> TokenCounts:
        """What an upstream reported, whose output count includes its reasoning."""
        output = output_tokens or 0
        if reasoning_tokens is not None:
            reasoning_tokens = min(max(reasoning_tokens, 0), output)
            output -= reasoning_tokens
        return cls(input_tokens or 0, output, reasoning_tokens)

    @classmethod
    def reported(
        cls, input_tokens: int | None, output_tokens: int | None, reasoning_tokens: int | None
    ) -> TokenCounts | None:
        """:meth:`from_upstream`, or None when the upstream reported no usage at all (some
        OpenAI-compatible servers never do): such a call is estimated, not counted as 0."""
        if input_tokens is None and output_tokens is None:
            return None
        return cls.from_upstream(input_tokens, output_tokens, reasoning_tokens)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + (self.reasoning_tokens or 0)

    def __add__(self, other: TokenCounts) -> TokenCounts:
        reasoning = None
        if self.reasoning_tokens is not None or other.reasoning_tokens is not None:
            reasoning = (self.reasoning_tokens or 0) + (other.reasoning_tokens or 0)
        return TokenCounts(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            reasoning,
            self.estimated or other.estimated,
        )

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.reasoning_tokens is not None:
            body["reasoning_tokens"] = self.reasoning_tokens
        if self.estimated:
            body["estimated"] = True
        return body


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One request sent upstream for a reply: where its text lies in the reply (character
    offsets into the whole answer and reasoning) and the last usage it reported.

    ``answer_from`` is also the length of the prefix it was asked to continue (0 for the
    first call), which is part of its input."""

    upstream: str
    answer_from: int
    answer_to: int
    reasoning_from: int = 0
    reasoning_to: int = 0
    reported: TokenCounts | None = None


def single_call(reported: TokenCounts | None, answer: str, reasoning: str = "") -> UpstreamCall:
    """The one call of a reply that was not continued."""
    return UpstreamCall("default", 0, len(answer), 0, len(reasoning), reported)


def reply_usage(
    calls: Sequence[UpstreamCall], request_text: str, answer: str, reasoning: str = ""
) -> TokenCounts:
    """A reply's usage: the sum of its calls, each as reported, else estimated.

    ``request_text`` is the request's text as sent (system prompt, history, the message),
    ``answer`` and ``reasoning`` the reply's whole text."""
    total = TokenCounts()
    request_tokens: int | None = None
    for call in calls:
        if call.reported is not None:
            total += call.reported
            continue
        if request_tokens is None:
            request_tokens = estimate_tokens(request_text)
        streamed_reasoning = reasoning[call.reasoning_from : call.reasoning_to]
        total += TokenCounts(
            request_tokens + estimate_tokens(answer[: call.answer_from]),
            estimate_tokens(answer[call.answer_from : call.answer_to]),
            estimate_tokens(streamed_reasoning) if streamed_reasoning else None,
            estimated=True,
        )
    return total


def request_text(contents: Iterable[str]) -> str:
    """The text of a request's messages, for :func:`reply_usage`."""
    return "\n".join(contents)


def estimated_usage(request: ChatRequest, answer: str) -> TokenCounts:
    """The estimate for one call that reported no usage: ``request``'s messages in,
    ``answer`` (the text streamed so far) out."""
    text = request_text(m.content for m in request.messages)
    return reply_usage([single_call(None, answer)], text, answer)


def reported_usage(finish: Finish) -> TokenCounts | None:
    """What a finished call's upstream reported, or None (then estimate it)."""
    return TokenCounts.reported(finish.input_tokens, finish.output_tokens, finish.reasoning_tokens)


# --------------------------------------------------------------------------- records


def utc_day(ts: float | None = None) -> dt.date:
    """The UTC day of a POSIX time (now when None)."""
    ts = time.time() if ts is None else ts
    start, end, day = _today
    if start <= ts < end:
        return day
    return _day_computed_once_a_day(ts)


_today: tuple[float, float, dt.date] = (0.0, 0.0, dt.date.min)  # [start, end) of the last day


def _day_computed_once_a_day(ts: float) -> dt.date:
    """:func:`utc_day` the long way; the day and its bounds are kept, so the turns of one
    day (every quota check, every usage record) build no ``datetime``."""
    global _today
    day = dt.datetime.fromtimestamp(ts, dt.UTC).date()
    start = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
    _today = (start, start + 86400.0, day)
    return day


def seconds_to_next_day(ts: float) -> int:
    """Whole seconds from ``ts`` until the next UTC midnight (at least 1)."""
    day = utc_day(ts)
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return max(1, math.ceil(midnight.timestamp() - ts))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one reply used, and whose it was; ``address`` is the client address of an
    anonymous user (per-address quotas), else None."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int | None
    estimated: bool
    model: str
    assistant: str
    user: str
    day: dt.date
    address: str | None = None

    @classmethod
    def of(
        cls,
        counts: TokenCounts,
        *,
        model: str,
        assistant: str,
        user: str,
        day: dt.date,
        address: str | None = None,
    ) -> UsageRecord:
        return cls(
            counts.input_tokens,
            counts.output_tokens,
            counts.reasoning_tokens,
            counts.estimated,
            model,
            assistant,
            user,
            day,
            address,
        )

    @property
    def counts(self) -> TokenCounts:
        return TokenCounts(
            self.input_tokens, self.output_tokens, self.reasoning_tokens, self.estimated
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + (self.reasoning_tokens or 0)


@dataclass(frozen=True, slots=True)
class SpentToday:
    """Tokens spent on one UTC day by a user, an assistant, and a client address."""

    user: int = 0
    assistant: int = 0
    address: int = 0


@dataclass(slots=True)
class UsageEntry:
    """One stored aggregate: a day's replies of one user with one assistant and model."""

    day: dt.date
    user: str
    assistant: str
    model: str
    replies: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated_replies: int = 0

    def add(self, record: UsageRecord) -> None:
        self.replies += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.reasoning_tokens += record.reasoning_tokens or 0
        self.estimated_replies += int(record.estimated)

    def key(self, group_by: GroupBy) -> str:
        if group_by == "day":
            return self.day.isoformat()
        value: str = getattr(self, group_by)
        return value


@dataclass(slots=True)
class UsageRow:
    """One row of ``GET /api/v1/usage`` (and, with no key, its total)."""

    key: str
    replies: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated_replies: int = 0

    def add(self, entry: UsageEntry | UsageRow) -> None:
        self.replies += entry.replies
        self.input_tokens += entry.input_tokens
        self.output_tokens += entry.output_tokens
        self.reasoning_tokens += entry.reasoning_tokens
        self.estimated_replies += entry.estimated_replies

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.reasoning_tokens

    def as_json(self, *, with_key: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"key": self.key} if with_key else {}
        body.update(
            replies=self.replies,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=self.reasoning_tokens,
            estimated_replies=self.estimated_replies,
        )
        return body


def aggregate(entries: Iterable[UsageEntry], group_by: GroupBy) -> list[UsageRow]:
    """Rows grouped by ``group_by``: days in order; users, assistants and models by the
    tokens they used, most first (ties by key)."""
    rows: dict[str, UsageRow] = {}
    for entry in entries:
        key = entry.key(group_by)
        row = rows.get(key)
        if row is None:
            row = rows[key] = UsageRow(key)
        row.add(entry)
    if group_by == "day":
        return sorted(rows.values(), key=lambda r: r.key)
    return sorted(rows.values(), key=lambda r: (-r.total_tokens, r.key))


# --------------------------------------------------------------------------- the endpoint


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A checked ``GET /api/v1/usage`` query; ``user`` set means only that user's usage."""

    start: dt.date
    end: dt.date
    group_by: GroupBy
    user: str | None

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def parse_usage_query(
    params: Mapping[str, str],
    *,
    caller: str,
    is_admin: bool,
    today: dt.date,
    retention_days: int,
) -> UsageQuery:
    """``from``, ``to`` (UTC days, default today, ``from`` defaults to ``to``) and
    ``group_by`` (default ``day``); an admin sees everyone (``user=`` narrows it), anyone
    else only their own usage (another ``user=`` is :class:`Forbidden`). A bad value is a
    :class:`BadRequest` naming the parameter. A range is cut to the retention window;
    ``from`` after ``to`` is a range with no days."""
    for name in params:
        if name not in ("from", "to", "group_by", "user"):
            raise BadRequest(f"{name}: unknown parameter (from, to, group_by, user)")
    end = _day(params, "to", today)
    start = _day(params, "from", end)
    # Days before the retention window are forgotten: a range reaching further back starts
    # at the oldest day kept, and one that ends before it starts has no days.
    start = max(start, end - dt.timedelta(days=retention_days - 1))
    group_by = params.get("group_by", "day")
    if group_by not in GROUPS:
        raise BadRequest(f"group_by: must be one of {', '.join(GROUPS)} (got {group_by!r})")
    user: str | None = caller
    if is_admin:
        user = params.get("user") or None
    elif params.get("user", caller) != caller:
        raise Forbidden("user: only an admin may read another user's usage")
    return UsageQuery(start, end, group_by, user)  # type: ignore[arg-type]


def _day(params: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    text = params.get(name)
    if text is None:
        return default
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: expected a day as YYYY-MM-DD (got {text!r})") from None


def usage_body(query: UsageQuery, rows: Sequence[UsageRow]) -> dict[str, Any]:
    """The endpoint's JSON body. A user's own ``group_by=user`` is always one row."""
    rows = list(rows)
    if query.group_by == "user" and query.user is not None and not rows:
        rows = [UsageRow(query.user)]
    total = UsageRow("")
    for row in rows:
        total.add(row)
    return {
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "group_by": query.group_by,
        "rows": [row.as_json() for row in rows],
        "total": total.as_json(with_key=False),
    }


def count_tokens(metrics: Metrics, record: UsageRecord) -> None:
    """Count a recorded reply into ``gateway_tokens_total{assistant,model,kind}``."""
    for kind, n in (
        ("input", record.input_tokens),
        ("output", record.output_tokens),
        ("reasoning", record.reasoning_tokens or 0),
    ):
        if n:
            metrics.tokens.labels(record.assistant, record.model, kind).inc(n)
