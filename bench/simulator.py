"""The project's Qwen simulator for the benchmark: on uvloop, paced by the clock.

``python -m bench.simulator PORT`` serves :func:`gateway.llm.simulator.create_simulator_app`
with two differences from ``python -m gateway fake-upstream``:

* uvloop instead of asyncio's default loop: the simulator shares a core with the load
  generator, so a cheaper loop leaves more of that core to the measuring side;
* pace by deadline: the simulator sleeps ``delay_ms`` after each step, so every late wake-up
  (a busy loop) pushes all later steps back, and a stream's lateness would pile up inside
  the simulator itself. Here step k of a stream is written at ``t1 + (k - 1) * delay``, ``t1``
  being when its first step was written, as a model that produces tokens at a steady rate;
  lateness measured by the load generator is then what the relay (and the loops) add.
"""

from __future__ import annotations

import asyncio
import sys
import weakref

import uvloop
from aiohttp import web

from gateway.llm import simulator
from gateway.llm.simulator import create_simulator_app

from .load import raise_nofile

_first_step_at: weakref.WeakKeyDictionary[asyncio.Task[object], float] = weakref.WeakKeyDictionary()


async def paced(ms: float, step: int) -> None:
    """``simulator._pause(ms, step)``, called after step ``step`` is written: by deadline."""
    if ms <= 0:
        if step % 64 == 0:
            await asyncio.sleep(0)
        return
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    start = _first_step_at.setdefault(task, loop.time() - (step - 1) * ms / 1000)
    await asyncio.sleep(max(0.0, start + step * ms / 1000 - loop.time()))


def main() -> None:
    if not hasattr(simulator, "_pause"):
        raise SystemExit("gateway.llm.simulator._pause is gone: update bench/simulator.py")
    simulator._pause = paced
    raise_nofile()
    web.run_app(
        create_simulator_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        handler_cancellation=True,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
