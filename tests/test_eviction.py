"""Memory mode's eviction policy, on plain values: oldest first, never a busy entry."""

from __future__ import annotations

from gateway.eviction import expired, to_evict


def _never(_: str) -> bool:
    return False


def test_nothing_is_evicted_within_the_bounds() -> None:
    """Within both bounds (or with none) no id is chosen."""
    entries = [("a", 10), ("b", 10)]
    assert to_evict(entries, _never, count=2, size=20, max_count=2, max_bytes=20) == []
    assert to_evict(entries, _never, count=2, size=20) == []


def test_the_oldest_go_first_until_the_count_fits() -> None:
    """Over the count bound: the oldest ids, just enough of them."""
    entries = [("a", 1), ("b", 1), ("c", 1), ("d", 1)]
    assert to_evict(entries, _never, count=4, size=4, max_count=2) == ["a", "b"]


def test_the_oldest_go_first_until_the_bytes_fit() -> None:
    """Over the byte budget: the oldest ids until the rest fits, whatever their count."""
    entries = [("a", 5), ("b", 50), ("c", 5), ("d", 5)]
    assert to_evict(entries, _never, count=4, size=65, max_bytes=20) == ["a", "b"]


def test_busy_entries_are_passed_over_even_past_the_bound() -> None:
    """A busy id is never chosen: the next idle one goes, or the bound stays passed."""
    entries = [("a", 1), ("b", 1), ("c", 1)]
    assert to_evict(entries, lambda k: k == "a", count=3, size=3, max_count=2) == ["b"]
    assert to_evict(entries, lambda k: True, count=3, size=3, max_count=1) == []


def test_expired_takes_the_idle_ids_used_before_the_deadline() -> None:
    """Ids last used before the deadline, oldest first, busy ones kept; the first newer one
    ends the scan (the entries are in order of use)."""
    entries = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 9.0)]
    assert expired(entries, lambda k: k == "b", before=5.0) == ["a", "c"]
    assert expired(entries, _never, before=1.0) == []
