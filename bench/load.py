"""The load generator, run in its own process: ``python -m bench.load '<json spec>'``.

Modes (``spec["mode"]``):

* ``ws``: C WebSocket chats (the gateway or a reference relay), one message each; with
  ``churners`` > 0, that many more sockets keep opening and closing while the chats stream.
* ``sse``: C streams read from the simulator directly, one HTTP stream per "connection":
  the floor.
* ``idle``: C chat sockets opened (each gets its ``connected`` frame) and held.
* ``stall``: C chats whose readers stop reading after the first delta (their sockets'
  receive buffers fixed at 64 KB, so the reply piles up on the server's side).
* ``pair``: C chats on one gateway instance (``url``, ``http``), each conversation also
  watched from a second instance sharing its Redis (``remote_url``) by the same user: a local
  and a remote viewer of every reply (:func:`ws_pair_stream`).

``idle`` and ``stall`` print ``READY n`` once every socket is open, then obey stdin:
``measure`` (prints the reply logs' size, found through ``GET /api/v1/generations/{id}``
where ``spec["http"]`` names the gateway) and ``quit``.

For each stream it records the time from sending the message to the first delta, and for
each later frame its lateness against the simulator's pace: step k is due at
``t_first + (k - k_first) * delay``, a merged frame counting for its last step. It counts
frames and steps, and checks each reply's text length against ``done.content_length``.
With ``spec["reasoning"]`` = R the simulator opens each reply with R reasoning steps
(``sim:reasoning=R``); ``reasoning`` frames count as frames and for timing as deltas do
(they share the step numbering), and their text in ``chars``, not in the length check.
It prints one JSON line: its results, and its own CPU time.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

try:
    import orjson

    loads: Callable[[str | bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - json does the same, a little slower
    loads = json.loads

PATH = "/api/v1/services/aigc/text-generation/generation"
ANON = "anon-benchbenchbench0001"  # the stalled readers' user, where ids are not signed
RCVBUF = 64 * 1024  # a stalled reader's socket receive buffer


@dataclass
class Stats:
    ttfd: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    frames: int = 0
    steps: int = 0
    chars: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    replies: int = 0
    remote_late: list[float] = field(default_factory=list)  # mode ``pair``: remote viewers


def raise_nofile() -> None:
    """Raise the soft open-file limit to the hard one (10 000 sockets need it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def prompt(i: int, spec: dict[str, Any]) -> str:
    extra = f" sim:chars={spec['chars']}" if spec.get("chars") else ""
    if spec.get("reasoning"):  # reasoning steps before the answer's ``tokens``
        extra += f" sim:reasoning={spec['reasoning']}"
    return f"bench {i} sim:tokens={spec['tokens']} sim:delay_ms={spec['delay_ms']}{extra}"


async def _connected(ws: aiohttp.ClientWebSocketResponse) -> None:
    while loads((await ws.receive()).data)["type"] != "connected":
        pass


async def ws_stream(
    http: aiohttp.ClientSession, i: int, spec: dict[str, Any], stats: Stats
) -> None:
    delay = spec["delay_ms"] / 1000
    async with http.ws_connect(spec["url"], max_msg_size=0, autoping=True) as ws:
        await _connected(ws)
        sent = time.perf_counter()
        await ws.send_str(json.dumps({"type": "message", "id": f"c-{i}", "text": prompt(i, spec)}))
        first_at, first_seq, length, thought = 0.0, 0, 0, 0
        while True:
            msg = await ws.receive()
            now = time.perf_counter()
            if msg.type != aiohttp.WSMsgType.TEXT:
                stats.errors.append(f"closed {ws.close_code}")
                return
            frame = loads(msg.data)
            kind = frame["type"]
            if kind in ("delta", "reasoning"):  # (steps of either kind share one numbering)
                stats.frames += 1
                if kind == "delta":
                    length += len(frame["text"])
                else:
                    thought += len(frame["text"])
                if not first_at:
                    first_at, first_seq = now, frame["seq"]
                    stats.ttfd.append(now - sent)
                elif delay:
                    stats.late.append(now - (first_at + (frame["seq"] - first_seq) * delay))
            elif kind == "done":
                stats.steps += frame["seq"]
                stats.chars += length + thought
                stats.replies += 1
                stats.mismatches += length != frame["content_length"]
                return
            elif kind == "error":
                stats.errors.append(frame.get("code", "error"))
                return


async def _viewer_frames(
    ws: aiohttp.ClientWebSocketResponse, stats: Stats
) -> tuple[list[tuple[float, int]], int, dict[str, Any] | None]:
    """Read one viewer's reply: (arrival, seq) of each delta, the text's length, the ``done``
    frame (None after an error or a close, counted in ``stats.errors``)."""
    arrivals: list[tuple[float, int]] = []
    length = 0
    while True:
        msg = await ws.receive()
        now = time.perf_counter()
        if msg.type != aiohttp.WSMsgType.TEXT:
            stats.errors.append(f"closed {ws.close_code}")
            return arrivals, length, None
        frame = loads(msg.data)
        kind = frame["type"]
        if kind == "delta":
            arrivals.append((now, frame["seq"]))
            length += len(frame["text"])
        elif kind == "done":
            return arrivals, length, frame
        elif kind == "error":
            stats.errors.append(frame.get("code", "error"))
            return arrivals, length, None


async def ws_pair_stream(
    http: aiohttp.ClientSession, i: int, spec: dict[str, Any], stats: Stats
) -> None:
    """One chat on the first instance and the same conversation watched, by the same user,
    from the second: both viewers' lateness against the pace anchored at the local viewer's
    first delta (so a remote viewer's first delta counts late by however long the reply took
    to cross), in ``stats.late`` and ``stats.remote_late``."""
    delay = spec["delay_ms"] / 1000
    async with http.post(f"{spec['http']}/api/v1/anonymous") as resp:
        token = (await resp.json())["token"]
    async with http.ws_connect(spec["url"], params={"token": token}, max_msg_size=0) as local:
        connected = loads((await local.receive()).data)
        while connected["type"] != "connected":
            connected = loads((await local.receive()).data)
        params = {"token": token, "conversation_id": connected["conversation_id"]}
        async with http.ws_connect(spec["remote_url"], params=params, max_msg_size=0) as remote:
            await _connected(remote)
            sent = time.perf_counter()
            text = prompt(i, spec)
            await local.send_str(json.dumps({"type": "message", "id": f"c-{i}", "text": text}))
            (mine, mine_len, done), (theirs, their_len, their_done) = await asyncio.gather(
                _viewer_frames(local, stats), _viewer_frames(remote, stats)
            )
    if not mine or done is None:
        return
    first_at, first_seq = mine[0]
    stats.ttfd.append(first_at - sent)
    stats.frames += len(mine) + len(theirs)
    stats.late.extend(at - (first_at + (seq - first_seq) * delay) for at, seq in mine[1:])
    stats.remote_late.extend(at - (first_at + (seq - first_seq) * delay) for at, seq in theirs)
    stats.steps += done["seq"]
    stats.chars += mine_len
    stats.replies += 1
    stats.mismatches += mine_len != done["content_length"]
    if their_done is not None:
        stats.mismatches += their_len != their_done["content_length"]


async def sse_stream(
    http: aiohttp.ClientSession, i: int, spec: dict[str, Any], stats: Stats
) -> None:
    """The floor: one DashScope SSE stream, each event with text is one step."""
    delay = spec["delay_ms"] / 1000
    body = {
        "model": "qwen-plus",
        "input": {"messages": [{"role": "user", "content": prompt(i, spec)}]},
        "parameters": {"incremental_output": True, "result_format": "message"},
    }
    sent = time.perf_counter()
    first_at, seq, tail = 0.0, 0, b""
    async with http.post(
        spec["url"] + PATH, json=body, headers={"X-DashScope-SSE": "enable"}
    ) as resp:
        async for chunk in resp.content.iter_any():
            now = time.perf_counter()
            events = (tail + chunk).split(b"\n\n")
            tail = events.pop()
            for event in events:
                data = event[event.find(b"data:") + 5 :]
                text = loads(data)["output"]["choices"][0]["message"]["content"]
                if not text:
                    continue
                seq += 1
                stats.frames += 1
                stats.chars += len(text)
                if not first_at:
                    first_at = now
                    stats.ttfd.append(now - sent)
                elif delay:
                    stats.late.append(now - (first_at + (seq - 1) * delay))
    stats.steps += seq
    stats.replies += 1


async def hold(
    http: aiohttp.ClientSession,
    i: int,
    spec: dict[str, Any],
    opened: dict[int, str],
    release: asyncio.Event,
) -> None:
    """Open a chat socket and hold it; a stalled reader first starts a long reply."""
    headers = {"Cookie": f"gw_anon={spec['anon']}"} if spec["mode"] == "stall" else None
    async with http.ws_connect(spec["url"], headers=headers, max_msg_size=0) as ws:
        await _connected(ws)
        message_id = ""
        if spec["mode"] == "stall":
            await ws.send_str(
                json.dumps({"type": "message", "id": f"s-{i}", "text": prompt(i, spec)})
            )
            while True:
                frame = loads((await ws.receive()).data)
                if frame["type"] == "start":
                    message_id = frame["message_id"]
                elif frame["type"] == "delta":
                    break
        opened[i] = message_id
        await release.wait()  # hold the socket without reading it


async def reply_logs(
    http: aiohttp.ClientSession, spec: dict[str, Any], ids: list[str]
) -> dict[str, Any]:
    """Bytes of step text the gateway holds for these replies: its reply logs, and history.

    The gateway reports each reply's head ``seq``; the simulator's steps are deterministic
    (``gateway.llm.script``), so a log holds exactly the first ``seq`` of them. They are
    appended to a :class:`gateway.replies.ReplyLog` here and its containers measured
    (:func:`log_footprint`). A reply that has ended is also in its conversation's history,
    as one joined ``str``.
    """
    from gateway.llm.script import parse_options, reply_steps

    logs = history = 0
    states: dict[str, int] = {}
    for i, message_id in enumerate(ids):
        async with http.get(
            f"{spec['http']}/api/v1/generations/{message_id}",
            headers={"Cookie": f"gw_anon={spec['anon']}"},
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{resp.status} {await resp.text()}")
            status = await resp.json()
        states[status["status"]] = states.get(status["status"], 0) + 1
        options = parse_options(prompt(i, spec), None)
        steps = reply_steps(options.prompt, options)[: int(status["seq"])]
        logs += log_footprint(steps)
        if status["status"] != "running":
            history += sys.getsizeof("".join(steps))
    return {"reply_log_bytes": logs, "history_bytes": history, "states": states}


def log_footprint(steps: list[str]) -> int:
    """Bytes a reply log holding ``steps`` takes: its packed chunks, its tail of step
    strings, the offset arrays, and the lists holding them (the log's own fields aside)."""
    from gateway.step_texts import StepTexts

    texts = StepTexts()
    for step in steps:
        texts.append(step)
    return texts.footprint()


def small_rcvbuf(addr_info: Any) -> socket.socket:
    """A client socket whose receive buffer cannot grow (Linux autotunes it to tcp_rmem's
    maximum, 32 MB here, where a whole reply would hide from the server under test)."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    return sock


async def anonymous_credential(http: aiohttp.ClientSession, spec: dict[str, Any]) -> str:
    """One anonymous user for the stalled readers: a credential the gateway signed
    (``POST /api/v1/anonymous``), or, from a gateway without that route, a plain id."""
    if spec.get("http"):
        async with http.post(f"{spec['http']}/api/v1/anonymous") as resp:
            if resp.status == 200:
                return str((await resp.json())["token"])
    return ANON


async def held(http: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    count = spec["connections"]
    if spec["mode"] == "stall":
        spec = {**spec, "anon": await anonymous_credential(http, spec)}
    opened: dict[int, str] = {}
    release = asyncio.Event()
    holders = []
    batch, pause = spec.get("batch", 200), spec.get("batch_pause_s", 0.05)
    for i in range(count):  # open in batches: a listen backlog is finite
        holders.append(asyncio.create_task(hold(http, i, spec, opened, release)))
        if i % batch == batch - 1:
            await asyncio.sleep(pause)
    deadline = time.monotonic() + 60
    while len(opened) < count and time.monotonic() < deadline:
        if sum(t.done() for t in holders) + len(opened) >= count:
            break  # some failed: report how many are held
        await asyncio.sleep(0.05)  # counting sockets as they open; no event per socket
    print("READY", len(opened), flush=True)
    loop = asyncio.get_running_loop()
    logs: dict[str, Any] = {}
    while (command := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) not in (
        "quit",
        "",
    ):
        if command == "measure":
            if spec.get("http") and spec["mode"] == "stall":
                logs = await reply_logs(http, spec, [opened[i] for i in sorted(opened)])
            print(json.dumps(logs), flush=True)
    failures = [repr(t.exception()) for t in holders if t.done() and t.exception()]
    release.set()
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    return {"held": len(opened), "errors": failures[:5], "error_count": len(failures)}


async def churn(http: aiohttp.ClientSession, spec: dict[str, Any], stop: asyncio.Event) -> int:
    """Open a socket, take its ``connected`` frame, close it; every ``churn_ms`` until stopped."""
    opened, period = 0, spec.get("churn_ms", 50) / 1000
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not stop.is_set():
        async with http.ws_connect(spec["url"]) as ws:
            await _connected(ws)
            opened += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return opened


async def streams(http: aiohttp.ClientSession, spec: dict[str, Any]) -> dict[str, Any]:
    stats = Stats()
    count = spec["connections"]
    stream = sse_stream if spec["mode"] == "sse" else ws_stream
    if spec["mode"] == "pair":
        stream = ws_pair_stream
    gap = spec.get("ramp_s", 0) / count

    async def one(i: int) -> None:
        await asyncio.sleep(i * gap)
        await stream(http, i, spec, stats)

    stop = asyncio.Event()
    churners = [
        asyncio.create_task(churn(http, spec, stop)) for _ in range(spec.get("churners", 0))
    ]
    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    wall = time.perf_counter() - started
    stop.set()
    churned = sum(await asyncio.gather(*churners))
    stats.errors.extend(repr(r) for r in results if isinstance(r, BaseException))
    return {
        "wall_s": wall,
        "ttfd": stats.ttfd,
        "late": stats.late,
        "frames": stats.frames,
        "steps": stats.steps,
        "chars": stats.chars,
        "replies": stats.replies,
        "errors": stats.errors[:5],
        "error_count": len(stats.errors),
        "mismatches": stats.mismatches,
        "churned": churned,
        "remote_late": stats.remote_late,
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    raise_nofile()
    connector = aiohttp.TCPConnector(
        limit=0,
        force_close=spec["mode"] == "sse",
        socket_factory=small_rcvbuf if spec["mode"] == "stall" else None,
    )
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as http:
        if spec["mode"] in ("idle", "stall"):
            result = await held(http, spec)
        else:
            result = await streams(http, spec)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["load_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        print(json.dumps(runner.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
