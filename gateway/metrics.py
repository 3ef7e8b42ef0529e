"""Prometheus metrics, one registry per app (so several apps in one test process never clash).

Per-frame and per-step counts, and the open sockets per assistant (two updates per socket),
are plain integers read at scrape time by small collectors, so the hot path pays an integer
add, not a metric lock (nor, for a labelled metric, a ``labels()`` lookup). Everything else
uses prometheus-client's own types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The gateway's Prometheus metrics in their own registry. Hot counters are plain ints
    the code adds to and that are read at scrape time; the rest are prometheus_client
    metrics. :meth:`render` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # gateway_connections{assistant}: kept by the registry; an assistant's entry stays at
        # 0 once its sockets are gone, as a labelled Gauge's child would.
        self.connections: dict[str, int] = {}
        r.register(_ConnectionsGauge(self.connections))
        self.replies_in_flight = Gauge(
            "gateway_replies_in_flight", "Replies streaming from the upstream", registry=r
        )
        self.time_to_first_delta = Histogram(
            "gateway_time_to_first_delta_seconds",
            "From a user's message to the reply's first step",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.reply_duration = Histogram(
            "gateway_reply_duration_seconds",
            "From a user's message to the reply's end",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.slow_consumer_closes = Counter(
            "gateway_slow_consumer_closes", "Connections closed with 1013 slow consumer", registry=r
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Upstream failures by contract code", ["code"], registry=r
        )
        self.resumes = Counter("gateway_resumes", "Replies resumed by a viewer", registry=r)
        self.replies = Counter(
            "gateway_replies", "Replies ended, by finish reason", ["finish_reason"], registry=r
        )
        # Cost control (contract section 12, 13): counted once per reply or per refusal.
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens used by replies",
            ["assistant", "model", "kind"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "gateway_quota_refusals", "Turns refused by a daily quota", ["quota"], registry=r
        )
        self.upstream_failovers = Counter(
            "gateway_upstream_failovers",
            "Turns moved off an upstream that failed before its first step",
            ["upstream"],
            registry=r,
        )
        self.continuations = Counter(
            "gateway_upstream_continuations",
            "Replies continued on another upstream after a mid-stream failure",
            ["upstream"],
            registry=r,
        )
        # Hot counters: plain ints, plus whatever live objects still hold.
        self.steps = 0
        self.frames_sent = 0
        self.frames_merged = 0
        self.live_frames: Callable[[], tuple[int, int]] = lambda: (0, 0)
        r.register(_HotCounters(self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ConnectionsGauge(Collector):
    """``gateway_connections{assistant}`` read from the registry's counts at scrape time."""

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for assistant, count in list(self._counts.items()):
            family.add_metric([assistant], count)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "gateway_connections", "Open chat WebSockets", labels=["assistant"]
        )


class _HotCounters(Collector):
    """The plain-int counters (steps, frames, merges), plus the live sockets' frames, as
    counter families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families(0, 0))

    def collect(self) -> Iterator[Metric]:
        sent, merged = self._m.live_frames()
        yield from self._families(sent, merged)

    def _families(self, live_sent: int, live_merged: int) -> Iterator[Metric]:
        m = self._m
        yield CounterMetricFamily(
            "gateway_steps", "Upstream events that added text (numbered steps)", value=m.steps
        )
        yield CounterMetricFamily(
            "gateway_frames_sent",
            "Frames sent to chat sockets",
            value=m.frames_sent + live_sent,
        )
        yield CounterMetricFamily(
            "gateway_merged_steps",
            "Steps delivered inside an earlier step's frame",
            value=m.frames_merged + live_merged,
        )
