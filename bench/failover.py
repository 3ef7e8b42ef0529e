"""The failover scenario (issue 17): what a 429 from the first upstream of a pool adds to the
first delta, and that the cooled-down upstream is not asked again.

Two rows, each a fresh gateway against the run's simulator:

* ``single``: the benchmark's gateway as it is (one ``[upstream]``, the simulator);
* ``pool``: the same gateway with ``assistants.default.upstreams = ["throttled", "default"]``,
  ``throttled`` being ``bench/throttled.py`` (every request refused with DashScope's 429), and
  ``upstream.cooldown_s = max_cooldown_s = COOLDOWN_S``.

One socket sends turns one after another and times each from its ``message`` to its first
``delta``. ``single``: ``rounds`` turns. ``pool``: ``rounds`` rounds, each once the cooldown
has run out: a turn that meets the 429 and fails over (*after a 429*), then at once a second
turn, while ``throttled`` cools down (*cooled*), which must go straight to the simulator; the
throttled upstream's request count must grow by exactly one a round.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import servers
from .servers import Server

COOLDOWN_S = 0.5
POOL_TOML = """
[upstreams.throttled]
kind = "dashscope"
base_url = "{throttled}"
api_key = "bench"
[assistants.default]
upstreams = ["throttled", "default"]
"""
COOLDOWN_TOML = f"cooldown_s = {COOLDOWN_S}\nmax_cooldown_s = {COOLDOWN_S}\n"


def start_throttled() -> Server:
    """``bench/throttled.py`` on the load core."""
    port = servers.free_port()
    argv = [sys.executable, "-m", "bench.throttled", str(port)]
    proc = subprocess.Popen(
        servers.pinned(servers.LOAD_CORE, argv),
        env=servers.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=servers.ROOT,
    )
    servers.wait_port(port, proc)
    return Server("throttled", proc, f"http://127.0.0.1:{port}")


def start_gateway(kind: str, sim_url: str, throttled_url: str, tmp: Path) -> Server:
    """The benchmark's gateway (``single``), or it with the pool in front (``pool``)."""
    text = servers.gateway_toml("gateway", sim_url).replace(
        "[upstream]\n", "[upstream]\n" + COOLDOWN_TOML, 1
    )
    if kind == "pool":
        text += POOL_TOML.format(throttled=throttled_url)
    conf = tmp / f"failover-{kind}.toml"
    conf.write_text(text)
    port = servers.free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(conf), "--port", str(port)]
    proc = subprocess.Popen(
        servers.pinned(servers.SERVER_CORE, argv),
        env=servers.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=servers.GATEWAY_ROOT,
    )
    servers.wait_port(port, proc)
    base = f"127.0.0.1:{port}"
    return Server(kind, proc, f"ws://{base}/api/v1/assistants/default/ws", f"http://{base}")


class Turns:
    """One chat socket sending turns one at a time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, spec: dict[str, Any]) -> None:
        self.ws = ws
        self.spec = spec
        self.sent = 0
        self.errors: list[str] = []

    async def first_delta_ms(self) -> float:
        """Send one message; the time to its first delta (ms), once its reply is done."""
        self.sent += 1
        text = f"failover {self.sent} sim:tokens={self.spec['tokens']} sim:delay_ms=" + str(
            self.spec["delay_ms"]
        )
        frame = {"type": "message", "id": f"c-{self.sent}", "text": text}
        started = time.perf_counter()
        await self.ws.send_str(json.dumps(frame))
        first = 0.0
        while True:
            msg = await self.ws.receive(timeout=30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket closed: {msg.type} {msg.data!r}")
            reply = json.loads(msg.data)
            if reply["type"] == "delta" and not first:
                first = time.perf_counter() - started
            elif reply["type"] == "error":
                self.errors.append(reply.get("code", "error"))
                return float("nan")
            elif reply["type"] == "done":
                return 1000 * first


async def _throttled_requests(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/requests") as resp:
        return int((await resp.json())["requests"])


async def _measure(gateway: Server, throttled: Server, spec: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.ws_connect(gateway.url) as ws:
        while json.loads((await ws.receive()).data)["type"] != "connected":
            pass
        turns = Turns(ws, spec)
        for _ in range(2):  # warm: the upstream connections, the first turn's imports
            await turns.first_delta_ms()
        row: dict[str, Any] = {"kind": gateway.kind, "failover": True, "rounds": spec["rounds"]}
        if gateway.kind == "single":
            times = [await turns.first_delta_ms() for _ in range(spec["rounds"])]
            row.update(_summary("", times))
        else:
            after, cooled, asked_when_cooled = [], [], 0
            before = await _throttled_requests(http, throttled.url)
            for _ in range(spec["rounds"]):
                await asyncio.sleep(COOLDOWN_S + 0.1)  # the cooldown runs out
                after.append(await turns.first_delta_ms())
                asked = await _throttled_requests(http, throttled.url)
                cooled.append(await turns.first_delta_ms())
                asked_when_cooled += await _throttled_requests(http, throttled.url) - asked
            row.update(_summary("", after))
            row.update(_summary("cooled_", cooled))
            row["throttled_requests"] = await _throttled_requests(http, throttled.url) - before
            row["throttled_asked_when_cooled"] = asked_when_cooled
        row["errors"] = len(turns.errors)
        row["error_samples"] = turns.errors[:5]
        return row


def _summary(prefix: str, times: list[float]) -> dict[str, float]:
    ok = sorted(t for t in times if t == t)  # errors are NaN
    if not ok:
        return {f"{prefix}ttfd_p50_ms": float("nan"), f"{prefix}ttfd_max_ms": float("nan")}
    return {
        f"{prefix}ttfd_p50_ms": statistics.median(ok),
        f"{prefix}ttfd_p90_ms": ok[min(len(ok) - 1, int(0.9 * len(ok)))],
        f"{prefix}ttfd_max_ms": ok[-1],
    }


def measure(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One row of the failover scenario (``kind``: ``single`` or ``pool``)."""
    throttled = start_throttled()
    try:
        gateway = start_gateway(kind, sim.url, throttled.url, tmp)
        try:
            return asyncio.run(_measure(gateway, throttled, spec))
        finally:
            gateway.stop()
    finally:
        throttled.stop()
