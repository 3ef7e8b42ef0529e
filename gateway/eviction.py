"""Memory mode's bounds: which idle entries to forget, oldest first. Pure: plain values in,
ids out.

One instance keeps conversations and ended reply logs in its own memory. Both stores hold
their entries least recently used first and ask :func:`to_evict` which to forget once a
count or byte bound is passed, and conversations ask :func:`expired` which have been idle
past a time-to-live. An entry the caller calls busy (a running reply, a live viewer) is never
chosen: a bound can be exceeded while everything held is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def to_evict(
    oldest_first: Iterable[tuple[str, int]],
    busy: Callable[[str], bool],
    *,
    count: int,
    size: int,
    max_count: int = 0,
    max_bytes: int = 0,
) -> list[str]:
    """The ids to forget, oldest first, so that at most ``max_count`` entries and
    ``max_bytes`` bytes are left (0: no bound); ``oldest_first`` gives each id and its
    bytes, ``count`` and ``size`` are the totals now. Busy ids are passed over."""
    chosen: list[str] = []
    for key, nbytes in oldest_first:
        if (not max_count or count <= max_count) and (not max_bytes or size <= max_bytes):
            break
        if busy(key):
            continue
        chosen.append(key)
        count -= 1
        size -= nbytes
    return chosen


def expired(
    oldest_first: Iterable[tuple[str, float]],
    busy: Callable[[str], bool],
    *,
    before: float,
) -> list[str]:
    """The ids last used before ``before``, oldest first, busy ones passed over;
    ``oldest_first`` gives each id and when it was last used."""
    chosen: list[str] = []
    for key, used_at in oldest_first:
        if used_at >= before:
            break
        if not busy(key):
            chosen.append(key)
    return chosen
