"""Handing freed heap memory back to the system (glibc's ``malloc_trim``).

glibc gives memory back to the system only from the top of its heap. A long reply paused
behind a stalled reader keeps its log's chunks; between them lie the pages of the many
short-lived buffers that decoding the upstream and framing deltas used: free for glibc,
still resident for the system, until something of the same size comes along. In the
slow-readers benchmark that was about 0.6 MB per stalled reader, more than its outbox, and
after a burst of long replies the RSS stayed at its high-water mark.

Every :data:`TRIM_EVERY_S` one task calls ``malloc_trim(0)``, which releases every whole
free page anywhere in the heap (``madvise``): about a millisecond on a gigabyte heap with
nothing to give back. Where the C library has no ``malloc_trim`` (musl, macOS) there is no
task.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 2.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the interpreter is linked with, libc's among them
    except OSError:  # pragma: no cover - a platform without dlopen(NULL)
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


async def trim_forever(trim: Callable[[int], int], every_s: float = TRIM_EVERY_S) -> None:
    while True:
        await asyncio.sleep(every_s)
        trim(0)
