"""Handing freed heap memory back to the system (glibc's ``malloc_trim``).

glibc gives memory back to the system only from the top of its heap. A long reply paused
behind a stalled reader keeps its log's chunks; between them lie the pages of the many
short-lived buffers that decoding the upstream and framing deltas used: free for glibc,
still resident for the system, until something of the same size comes along. In the
slow-readers benchmark that was more than a stalled reader's outbox, and after a burst of
long replies the RSS stayed at its high-water mark (figures: docs/performance.md).

Two measures. At start-up (:func:`map_big_blocks`, called by the server) glibc's mmap
threshold is fixed at :data:`MMAP_THRESHOLD`: blocks that big are mapped and unmapped on their
own. glibc starts there too, but raises the threshold to the size of every mapped block
freed; after that, big short-lived buffers (a merged frame for a lagging reader, the text of
a log chunk being packed, a cumulative event) are carved out of the heap and leave holes
between the long-lived log chunks. Fixed, the slow-readers benchmark holds less beyond its
logs (docs/performance.md).

And every :data:`TRIM_EVERY_S` one task asks glibc how much of its heap is free
(``mallinfo2``) and, when that is at least :data:`TRIM_AT_BYTES`, calls ``malloc_trim(0)``,
which releases every whole free page anywhere in the heap (``madvise``). Below that it
leaves the pages alone: a page given back and wanted again costs a page fault. Where the C
library lacks these functions (musl, macOS, glibc before 2.33) neither measure is taken.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 2.0
TRIM_AT_BYTES = 8 * 1024 * 1024
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (``mallinfo2()``'s result)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the symbols the interpreter is linked with, libc's among them
    except OSError:  # pragma: no cover - a platform without dlopen(NULL)
        return None


def map_big_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix the size from which glibc maps a block on its own (``M_MMAP_THRESHOLD``; fixing
    it also stops glibc raising it). Process-wide; False where the C library cannot."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def heap_trimmer() -> Callable[[], int] | None:
    """A call that trims the heap when enough of it is free (and returns the bytes it found
    free); None where the C library cannot."""
    libc = _libc()
    if libc is None:  # pragma: no cover - a platform without dlopen(NULL)
        return None
    trim, info = getattr(libc, "malloc_trim", None), getattr(libc, "mallinfo2", None)
    if trim is None or info is None:
        return None
    info.restype = _MallInfo2

    def trim_if_worth_it() -> int:
        stats = info()
        free = int(stats.fordblks) - int(stats.keepcost)  # keepcost: the top, trimmed anyway
        if free >= TRIM_AT_BYTES:
            trim(0)
        return free

    return trim_if_worth_it


async def trim_forever(trim: Callable[[], int], every_s: float = TRIM_EVERY_S) -> None:
    while True:
        await asyncio.sleep(every_s)
        trim()
