"""Upstream pools, failover and continuation (contract section 13).

:class:`UpstreamPool` is pure (the clock and the random source are injected): which upstreams
a turn may try, in which order, and each one's health.

* Order: the assistant's ``upstreams`` tiers in order; within a tier, a weighted shuffle, so
  upstreams of equal preference share turns by ``weight``. Only upstreams that serve the
  request's model (``models``, empty: any) take part.
* Cooldown: a retryable failure (429, 5xx, a timeout, a dropped or malformed stream: the
  errors whose ``retryable`` is true) puts the upstream in cooldown for ``upstream.cooldown_s``,
  doubled for each further failure in a row, at most ``upstream.max_cooldown_s``; a reply that
  finishes on it clears it. An upstream in cooldown is passed over while any other may take the
  turn; when all of them are cooling down they are tried anyway, soonest ready first, so a
  single upstream behaves as version 1's did.
* ``upstream_auth`` and ``content_filtered`` are not retryable: they neither cool the upstream
  down nor move the turn (another key would not fix a refused prompt, and a wrong key is the
  operator's to see at once).

:class:`PooledUpstream` is an :class:`~gateway.llm.events.Upstream` over several clients:

* Failover before the first step: while the call has produced nothing (no
  :class:`~gateway.llm.events.Step`, no :class:`~gateway.llm.events.Reasoning`), a retryable
  failure moves the turn to the next upstream at once.
* Continuation after it, when the assistant has ``continue_on_failure``: the reply goes on on
  the next healthy upstream that can continue (DashScope's ``partial`` mode; ``openai``
  upstreams only where ``upstream.continuation = "vllm"``), asked to continue the answer so
  far (:attr:`ChatRequest.prefix`). Only what follows is streamed, so viewers see one reply.
  The continuation's reasoning, if any, is not passed on (the answer is already under way).
  A failure before any answer text (reasoning only) is not continued.
* :class:`PoolTrace`, given to :meth:`PooledUpstream.stream`, records each call (upstream,
  the answer's character range, reported usage: :func:`gateway.usage.reply_usage` turns it
  into the reply's usage), the failovers and the continuations (``done.continued``).

Clients in a pool of several upstreams should be built with ``max_retries = 0``
(:func:`member_config` does): moving on is faster than a backoff on the one that failed.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ..config import Config, UpstreamConfig
from ..errors import UpstreamError
from ..metrics import Metrics
from ..usage import TokenCounts, UpstreamCall
from .events import Backpressure, ChatRequest, Finish, Reasoning, Step, Upstream, UpstreamEvent

log = structlog.get_logger("gateway.upstream")

DEFAULT = "default"  # the [upstream] table's name in a pool

Preference = Sequence[Sequence[str]]


@dataclass(frozen=True, slots=True)
class Member:
    """One upstream of a pool, as the pool sees it."""

    name: str
    weight: int = 1
    models: tuple[str, ...] = ()  # empty: any model
    can_continue: bool = True  # takes an assistant prefix to continue a reply

    def serves(self, model: str) -> bool:
        return not self.models or model in self.models


@dataclass(frozen=True, slots=True)
class UpstreamState:
    """One upstream's health for ``/readyz``: ``cooling_until`` is a clock time or None."""

    name: str
    cooling_until: float | None
    failures: int  # retryable failures in a row
    last_error: str | None  # the contract code of the last failure

    @property
    def ok(self) -> bool:
        return self.cooling_until is None

    def as_json(self) -> dict[str, Any]:
        if self.cooling_until is None:
            body: dict[str, Any] = {"state": "ok"}
        else:
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.cooling_until))
            body = {"state": "cooling_down", "until": until, "failures": self.failures}
        if self.last_error is not None:
            body["last_error"] = self.last_error
        return body


@dataclass(slots=True)
class _Health:
    failures: int = 0
    until: float | None = None
    last_error: str | None = None


class UpstreamPool:
    """The named upstreams' health and the order a turn tries them; pure.

    ``clock`` gives POSIX seconds (``until`` times are shown to operators); ``rng`` draws the
    weighted order within a tier. Not thread-safe; one per process, shared by all turns."""

    def __init__(
        self,
        members: Iterable[Member],
        *,
        cooldown_s: float,
        max_cooldown_s: float,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.members = {m.name: m for m in members}
        self._cooldown = cooldown_s
        self._max_cooldown = max_cooldown_s
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - load sharing, not crypto
        self._health = {name: _Health() for name in self.members}

    def candidates(
        self,
        preference: Preference,
        model: str,
        *,
        exclude: Iterable[str] = (),
        continuing: bool = False,
    ) -> list[str]:
        """Every upstream the turn may try, best first: healthy ones by tier and weight, then
        those cooling down, soonest ready first. ``continuing``: only those that can
        continue a reply."""
        now = self._clock()
        skip = set(exclude)
        healthy: list[str] = []
        cooling: list[tuple[float, str]] = []
        for tier in preference:
            members = [
                self.members[n]
                for n in tier
                if n not in skip
                and n in self.members
                and self.members[n].serves(model)
                and (self.members[n].can_continue or not continuing)
            ]
            for member in self._shuffled(members):
                until = self._cooling_until(member.name, now)
                if until is None:
                    healthy.append(member.name)
                else:
                    cooling.append((until, member.name))
        return healthy + [name for _, name in sorted(cooling)]

    def _shuffled(self, members: list[Member]) -> list[Member]:
        """A weighted random order (Efraimidis-Spirakis): the first is drawn with
        probability weight / total, and so on for the rest."""
        if len(members) < 2:
            return members
        keyed = [(self._rng.random() ** (1.0 / m.weight), m) for m in members]
        keyed.sort(key=lambda pair: pair[0], reverse=True)
        return [m for _, m in keyed]

    def _cooling_until(self, name: str, now: float) -> float | None:
        health = self._health[name]
        if health.until is not None and health.until <= now:
            health.until = None  # the cooldown has run out; failures stay until a success
        return health.until

    def failed(self, name: str, error: UpstreamError) -> bool:
        """Record a failure of ``name``; True when the turn may move to another upstream
        (the error is retryable), which also cools ``name`` down."""
        health = self._health[name]
        health.last_error = error.code
        if not error.retryable:
            return False
        health.failures += 1
        backoff = self._cooldown * 2 ** min(health.failures - 1, 62)
        health.until = self._clock() + min(backoff, self._max_cooldown)
        return True

    def succeeded(self, name: str) -> None:
        """A reply finished on ``name``: it is healthy again."""
        self._health[name] = _Health()

    def states(self) -> list[UpstreamState]:
        now = self._clock()
        return [
            UpstreamState(
                name,
                self._cooling_until(name, now),
                self._health[name].failures,
                self._health[name].last_error,
            )
            for name in self.members
        ]

    def ready(self) -> bool:
        """At least one upstream is not cooling down."""
        return any(state.ok for state in self.states())


# --------------------------------------------------------------------------- from the config


def preference_for(config: Config, assistant: str) -> tuple[tuple[str, ...], ...]:
    """The assistant's upstream tiers; without ``upstreams``, the ``[upstream]`` table."""
    return config.assistants[assistant].upstreams or ((DEFAULT,),)


def member_config(config: Config, name: str, *, alone: bool = False) -> UpstreamConfig:
    """The client settings of upstream ``name``: ``[upstream]`` for ``default``, else its
    ``[upstreams.<name>]`` table over ``[upstream]``'s timeouts and wire options.

    A pooled client does not retry (``max_retries = 0``): the pool moves on instead. ``alone``
    (the only upstream its assistant lists) keeps ``upstream.max_retries``, as version 1."""
    base = config.upstream
    retries = base.max_retries if alone else 0
    if name == DEFAULT:
        return dataclasses.replace(base, max_retries=retries)
    entry = config.upstreams[name]
    return dataclasses.replace(
        base,
        kind=entry.kind,
        base_url=entry.base_url,
        api_key=entry.api_key,
        max_retries=retries,
    )


def is_alone(preference: Preference) -> bool:
    """Whether a preference names a single upstream (its client may retry)."""
    return sum(len(tier) for tier in preference) == 1


def build_pool(config: Config, **kw: Any) -> UpstreamPool:
    """Every configured upstream (``default`` and each ``[upstreams.<name>]``) in one pool."""
    continuation = config.upstream.continuation == "vllm"
    members = [Member(DEFAULT, 1, (), config.upstream.kind != "openai" or continuation)]
    members += [
        Member(name, e.weight, e.models, e.kind != "openai" or continuation)
        for name, e in config.upstreams.items()
    ]
    return UpstreamPool(
        members,
        cooldown_s=config.upstream.cooldown_s,
        max_cooldown_s=config.upstream.max_cooldown_s,
        **kw,
    )


def pooled(config: Config) -> bool:
    """Whether any assistant needs a pool (``upstreams``, ``continue_on_failure``) or any
    ``[upstreams.<name>]`` is set; otherwise version 1's single ``[upstream]`` serves all."""
    return bool(config.upstreams) or any(
        a.upstreams or a.continue_on_failure for a in config.assistants.values()
    )


def pooled_upstreams(
    config: Config,
    pool: UpstreamPool,
    client: Callable[[str, UpstreamConfig], Upstream],
    metrics: Metrics | None = None,
) -> dict[str, PooledUpstream]:
    """A :class:`PooledUpstream` per assistant over one shared pool; ``client(name, cfg)``
    makes (or returns the already made) client of upstream ``name``."""
    by_assistant: dict[str, PooledUpstream] = {}
    for assistant, settings in config.assistants.items():
        preference = preference_for(config, assistant)
        alone = is_alone(preference)
        clients = {
            name: client(name, member_config(config, name, alone=alone))
            for tier in preference
            for name in tier
        }
        by_assistant[assistant] = PooledUpstream(
            pool,
            clients,
            preference,
            continue_on_failure=settings.continue_on_failure,
            metrics=metrics,
        )
    return by_assistant


# --------------------------------------------------------------------------- the stream


@dataclass(slots=True)
class PoolTrace:
    """What one pooled stream did, for usage, ``done.continued``, logs and metrics."""

    calls: list[UpstreamCall] = field(default_factory=list)
    failovers: int = 0
    continued: int = 0

    @property
    def upstream(self) -> str | None:
        """The upstream that answered last."""
        return self.calls[-1].upstream if self.calls else None


class PooledUpstream:
    """:class:`~gateway.llm.events.Upstream` over the clients of a pool, for one assistant.

    ``clients`` maps each upstream name of ``preference`` to its client. See the module
    docstring for failover and continuation."""

    def __init__(
        self,
        pool: UpstreamPool,
        clients: Mapping[str, Upstream],
        preference: Preference,
        *,
        continue_on_failure: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._clients = clients
        self._preference = preference
        self._continue = continue_on_failure
        self._metrics = metrics

    async def stream(
        self,
        request: ChatRequest,
        backpressure: Backpressure | None = None,
        *,
        trace: PoolTrace | None = None,
    ) -> AsyncGenerator[UpstreamEvent, None]:
        trace = PoolTrace() if trace is None else trace
        tried: list[str] = []
        answer: list[str] = []  # the answer so far, kept only to continue it
        answer_len = reasoning_len = 0
        last_error: UpstreamError | None = None
        while True:
            continuing = answer_len > 0
            options = self._pool.candidates(
                self._preference, request.model, exclude=tried, continuing=continuing
            )
            if not options:
                if last_error is not None:
                    raise last_error
                raise UpstreamError(f"no upstream serves the model {request.model!r}")
            name = options[0]
            if last_error is not None:
                self._moved(tried[-1], name, last_error, continuing, trace)
            tried.append(name)
            call = request
            if continuing:
                call = dataclasses.replace(request, prefix=request.prefix + "".join(answer))
            answer_from, reasoning_from = answer_len, reasoning_len
            reported: TokenCounts | None = None
            finished = False
            try:
                async for event in self._clients[name].stream(call, backpressure):
                    if isinstance(event, Step):
                        answer_len += len(event.text)
                        if self._continue:
                            answer.append(event.text)
                    elif isinstance(event, Reasoning):
                        if continuing:
                            continue  # the answer is under way: a new train of thought is noise
                        reasoning_len += len(event.text)
                    elif isinstance(event, Finish):
                        finished = True
                        reported = TokenCounts.reported(
                            event.input_tokens,
                            event.output_tokens,
                            getattr(event, "reasoning_tokens", None),  # newer Finish has it
                        )
                        self._pool.succeeded(name)
                    yield event
                if not finished:  # the client contract says it raises; be safe
                    raise UpstreamError("the model's reply ended early")
                return
            except UpstreamError as exc:
                moves = self._pool.failed(name, exc)
                # Past the first step (of this call, or of the reply), only a continuation
                # may take over.
                started = continuing or answer_len > answer_from or reasoning_len > reasoning_from
                if not moves or (started and not self._may_continue(answer_len)):
                    raise
                last_error = exc
            finally:
                trace.calls.append(
                    UpstreamCall(
                        name, answer_from, answer_len, reasoning_from, reasoning_len, reported
                    )
                )

    def _may_continue(self, answer_len: int) -> bool:
        return self._continue and answer_len > 0

    def _moved(
        self, failed: str, to: str, error: UpstreamError, continuing: bool, trace: PoolTrace
    ) -> None:
        if continuing:
            trace.continued += 1
            kind = "continuation"
            if self._metrics is not None:
                self._metrics.continuations.labels(to).inc()
        else:
            trace.failovers += 1
            kind = "failover"
            if self._metrics is not None:
                self._metrics.upstream_failovers.labels(failed).inc()
        log.warning(
            f"upstream {kind}",
            upstream=failed,
            to=to,
            code=error.code,
            status=error.status,
            upstream_code=error.upstream_code,
            upstream_request_id=error.request_id,
        )
