"""The load generator, run in its own process: ``python -m bench.load '<json spec>'``.

Modes:
* ``ws``: C WebSocket chats (the gateway, or a reference relay), one message each.
* ``sse``: C streams read from the simulator directly: the floor.
* ``idle``: C chat sockets opened and held; prints ``READY`` once all are connected.
* ``stall``: C chats whose readers stop after the first delta; prints ``READY``.
* ``churn``: ``ws`` streams while other sockets keep opening and closing.

For each stream it records the time to the first delta, and for each frame the lateness of
its last step against the simulator's pace (step k is due ``(k - k0) * delay`` after the
first frame), counts frames and steps, and checks the text's length against ``done``.
Prints one JSON result line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

PATH = "/api/v1/services/aigc/text-generation/generation"


@dataclass
class Stats:
    ttfd: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    frames: int = 0
    steps: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0


def _prompt(i: int, spec: dict[str, Any]) -> str:
    extra = f" sim:chars={spec['chars']}" if spec.get("chars") else ""
    return f"bench {i} sim:tokens={spec['tokens']} sim:delay_ms={spec['delay_ms']}{extra}"


async def _ws_stream(
    http: aiohttp.ClientSession, i: int, spec: dict[str, Any], stats: Stats
) -> None:
    delay = spec["delay_ms"] / 1000
    async with http.ws_connect(spec["url"], max_msg_size=0) as ws:
        while (await ws.receive_json())["type"] != "connected":
            pass
        sent = time.perf_counter()
        await ws.send_json({"type": "message", "id": f"c-{i}", "text": _prompt(i, spec)})
        first_at, first_seq, length = 0.0, 0, 0
        while True:
            frame = json.loads((await ws.receive()).data)
            now = time.perf_counter()
            kind = frame["type"]
            if kind == "delta":
                stats.frames += 1
                length += len(frame["text"])
                if not first_at:
                    first_at, first_seq = now, frame["seq"]
                    stats.ttfd.append(now - sent)
                else:
                    stats.late.append(now - (first_at + (frame["seq"] - first_seq) * delay))
            elif kind == "done":
                stats.steps += frame["seq"]
                stats.mismatches += length != frame["content_length"]
                return
            elif kind == "error":
                stats.errors.append(frame.get("code", "error"))
                return


async def _sse_stream(
    http: aiohttp.ClientSession, i: int, spec: dict[str, Any], stats: Stats
) -> None:
    delay = spec["delay_ms"] / 1000
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": _prompt(i, spec)}]},
        "parameters": {"incremental_output": True, "result_format": "message"},
    }
    sent = time.perf_counter()
    first_at, seq = 0.0, 0
    async with http.post(
        spec["url"] + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
    ) as resp:
        async for line in resp.content:
            if not line.startswith(b"data:"):
                continue
            now = time.perf_counter()
            text = json.loads(line[5:])["output"]["choices"][0]["message"]["content"]
            if not text:
                continue
            seq += 1
            stats.frames += 1
            if not first_at:
                first_at = now
                stats.ttfd.append(now - sent)
            else:
                stats.late.append(now - (first_at + (seq - 1) * delay))
    stats.steps += seq


async def _hold(
    http: aiohttp.ClientSession,
    i: int,
    spec: dict[str, Any],
    ready: list[int],
    release: asyncio.Event,
    stall: bool,
) -> None:
    async with http.ws_connect(spec["url"]) as ws:
        while (await ws.receive_json())["type"] != "connected":
            pass
        if stall:
            await ws.send_json({"type": "message", "id": f"s-{i}", "text": _prompt(i, spec)})
            while (await ws.receive_json())["type"] != "delta":
                pass
        ready.append(i)
        await release.wait()  # hold the socket without reading it


async def _churn(http: aiohttp.ClientSession, spec: dict[str, Any], stop: asyncio.Event) -> int:
    opened = 0
    while not stop.is_set():
        async with http.ws_connect(spec["url"]) as ws:
            await ws.receive_json()
            opened += 1
    return opened


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = Stats()
    mode, count = spec["mode"], spec["connections"]
    connector = aiohttp.TCPConnector(limit=0, force_close=mode == "sse")
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as http:
        if mode == "churn":
            mode = "ws"
        if mode in ("idle", "stall"):
            ready: list[int] = []
            release = asyncio.Event()
            holders = []
            for i in range(count):  # open in batches: a listen backlog is finite
                holders.append(
                    asyncio.create_task(_hold(http, i, spec, ready, release, mode == "stall"))
                )
                if i % 200 == 199:
                    await asyncio.sleep(0.05)
            while len(ready) < count and not any(t.done() for t in holders):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # counting sockets as they open; no event per socket
            print("READY", len(ready), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            release.set()
            await asyncio.gather(*holders, return_exceptions=True)
        else:
            stream = _sse_stream if mode == "sse" else _ws_stream
            stop = asyncio.Event()
            churners = [
                asyncio.create_task(_churn(http, spec, stop))
                for _ in range(spec.get("churners", 0))
            ]
            results = await asyncio.gather(
                *(stream(http, i, spec, stats) for i in range(count)), return_exceptions=True
            )
            stop.set()
            churned = sum(await asyncio.gather(*churners))
            stats.errors.extend(repr(r) for r in results if isinstance(r, BaseException))
            if churners:
                spec["churned"] = churned
    wall = time.perf_counter() - started
    return {
        "mode": mode,
        "wall_s": wall,
        "ttfd": stats.ttfd,
        "late": stats.late,
        "frames": stats.frames,
        "steps": stats.steps,
        "errors": stats.errors[:5],
        "error_count": len(stats.errors),
        "mismatches": stats.mismatches,
        "churned": spec.get("churned", 0),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        print(json.dumps(runner.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
