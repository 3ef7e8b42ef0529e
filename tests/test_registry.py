"""The registry's counts: capacity per user, and gateway_connections per assistant."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import TryAgainLater
from gateway.metrics import Metrics
from gateway.registry import Registry


class _Conn:
    """What the registry reads of a Connection (hashable by identity, like one)."""

    def __init__(self, user: str, assistant: str) -> None:
        self.user, self.assistant = user, assistant
        self.frames_sent, self.frames_merged, self.slow = 3, 1, False


def _conn(user: str, assistant: str = "default") -> Any:
    return _Conn(user, assistant)


def test_per_user_limit_counts_adds_removes_and_renames() -> None:
    """A user at max_per_user is refused; a close or a rename frees the place."""
    registry = Registry(10, 2, Metrics())
    a, b = _conn("u"), _conn("u")
    registry.add(a)
    registry.add(b)
    with pytest.raises(TryAgainLater):
        registry.check_capacity("u")
    registry.remove(a)
    registry.check_capacity("u")
    registry.add(a)
    registry.rename(a, "alice")
    registry.check_capacity("u")
    registry.remove(b)
    registry.remove(b)  # twice: no effect
    registry.remove(a)
    assert len(registry) == 0 and registry._per_user == {}


def test_connections_gauge_per_assistant_stays_at_zero_once_seen() -> None:
    """gateway_connections{assistant} follows adds and removes, and stays listed at 0, as a
    labelled Gauge's child would; a closed socket's frames stay counted."""
    metrics = Metrics()
    registry = Registry(10, 10, metrics)
    assert "gateway_connections{" not in metrics.render().decode()
    a, b = _conn("u", "default"), _conn("v", "other")
    registry.add(a)
    registry.add(b)
    text = metrics.render().decode()
    assert "# TYPE gateway_connections gauge" in text
    assert 'gateway_connections{assistant="default"} 1.0' in text
    assert 'gateway_connections{assistant="other"} 1.0' in text
    registry.remove(a)
    text = metrics.render().decode()
    assert 'gateway_connections{assistant="default"} 0.0' in text
    assert "gateway_frames_sent_total 6.0" in text  # the closed socket's 3, the live one's 3
