"""Handing the heap's free pages back to the system."""

from __future__ import annotations

import asyncio
import platform

import pytest

from gateway import heap

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
def test_glibc_malloc_trim_is_found_and_returns_freed_pages() -> None:
    """On glibc the trim is found, and it gives back pages freed inside the heap."""
    trim = heap.malloc_trim()
    assert trim is not None
    keep, drop = [], []
    for i in range(4000):  # 4 000 x 64 KB below the mmap threshold, every other one kept
        (keep if i % 2 else drop).append(bytearray(60_000))
    drop.clear()
    assert trim(0) == 1  # 1: some memory was released
    assert len(keep) == 2000


@glibc
async def test_the_app_runs_one_trim_task_and_stops_it_on_cleanup(gateway) -> None:
    """A running gateway has one 'heap trim' task, gone once the app has cleaned up."""
    gw = await gateway()
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert names.count("heap trim") == 1
    await gw.client.close()
    assert "heap trim" not in [t.get_name() for t in asyncio.all_tasks() if not t.done()]
