"""Handing the heap's free pages back to the system."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys
import textwrap

import pytest

from gateway import heap

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
def test_a_heap_with_many_free_pages_is_trimmed_and_gives_them_back() -> None:
    """With more than TRIM_AT_BYTES free inside the heap, the trim hands the pages back."""
    trim = heap.heap_trimmer()
    assert trim is not None
    keep, drop = [], []
    for i in range(800):  # 800 x 60 KB below the mmap threshold, every other one kept
        (keep if i % 2 else drop).append(bytearray(60_000))
    before = _rss_kb()
    drop.clear()  # 24 MB of holes: free for glibc, still resident
    assert trim() >= heap.TRIM_AT_BYTES
    assert _rss_kb() < before - heap.TRIM_AT_BYTES // 1024
    assert len(keep) == 400


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@glibc
async def test_the_app_runs_one_trim_task_and_stops_it_on_cleanup(gateway) -> None:
    """A running gateway has one 'heap trim' task, gone once the app has cleaned up."""
    gw = await gateway()
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert names.count("heap trim") == 1
    await gw.client.close()
    assert "heap trim" not in [t.get_name() for t in asyncio.all_tasks() if not t.done()]


_MAPPED = textwrap.dedent("""
    import ctypes, sys
    from gateway import heap
    info = ctypes.CDLL(None).mallinfo2
    info.restype = heap._MallInfo2
    if sys.argv[1] == "fixed":
        assert heap.map_big_blocks()
    big = bytearray(8 << 20)
    del big  # a mapped block freed: glibc on its own raises its threshold to 8 MB
    before = info().hblks
    block = bytearray(200 << 10)
    print(info().hblks - before)
""")


@glibc
@pytest.mark.parametrize(("mode", "mapped"), [("fixed", "1"), ("glibc", "0")])
def test_big_blocks_stay_mapped_once_the_threshold_is_fixed(mode: str, mapped: str) -> None:
    """Fixed, a 200 KB block is still mapped after an 8 MB one was freed; left to glibc, it
    comes out of the heap."""
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == mapped
