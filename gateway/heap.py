"""Handing freed heap memory back to the system (glibc's ``malloc_trim``).

glibc gives memory back to the system only from the top of its heap. A long reply paused
behind a stalled reader keeps its log's chunks; between them lie the pages of the many
short-lived buffers that decoding the upstream and framing deltas used: free for glibc,
still resident for the system, until something of the same size comes along. In the
slow-readers benchmark that was about 0.6 MB per stalled reader, more than its outbox, and
after a burst of long replies the RSS stayed at its high-water mark.

Every :data:`TRIM_EVERY_S` one task asks glibc how much of its heap is free
(``mallinfo2``) and, when that is at least :data:`TRIM_AT_BYTES`, calls ``malloc_trim(0)``,
which releases every whole free page anywhere in the heap (``madvise``). Below that it
leaves the pages alone: a page given back and wanted again costs a page fault. Where the C
library has neither function (musl, macOS, glibc before 2.33) there is no task.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 2.0
TRIM_AT_BYTES = 8 * 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap_trimmer() -> Callable[[], int] | None:
    """A call that trims the heap when enough of it is free (and returns the bytes it found
    free); None where the C library cannot."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the interpreter is linked with, libc's among them
    except OSError:  # pragma: no cover - a platform without dlopen(NULL)
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
