"""``python -m bench images``: what sending a 5 MB image adds to the gateway's peak RSS.

The gateway (``python -m gateway serve``) and the simulator run as separate processes; the
assistant is a vision model (``qwen-vl-max``, the multimodal endpoint). For each way of
sending an image it starts a fresh gateway, sends one warm-up turn with a 1 KB image the
same way, then resets the process's peak (``/proc/PID/clear_refs`` <- 5, which sets
``VmHWM`` to the current RSS), reads ``VmRSS``, sends the 5 MB image (a PNG header and
random bytes) and waits for ``done``. The figure is ``VmHWM`` after the turn minus ``VmRSS``
before it, as a multiple of the image's size. The ways:

* ``frame``: the image as a ``data:`` URL inside the ``message`` frame (contract section 11);
* ``upload``: the image's bytes posted to ``POST /api/v1/images`` first, then a ``message``
  naming it (``"images": [{"id": ...}]``), as the page sends it (docs/protocol.md).

Target (issue 16): no more than 2 x the image's size. A fresh process per sample and the ways
interleaved, ``--rounds`` times; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import servers

IMAGE_BYTES = 5 * 1024 * 1024  # limits.max_image_bytes's default
TARGET = 2.0
WAYS = ("frame", "upload")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOML = """
[upstream]
kind = "dashscope"
base_url = "{sim}"
api_key = "bench"
max_retries = 0
[assistants.default]
model = "qwen-vl-max"
[log]
level = "warning"
"""


def png(size: int) -> bytes:
    return PNG_MAGIC + os.urandom(size - len(PNG_MAGIC))


def data_url(data: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def start_gateway(sim_url: str, tmp: Path) -> servers.Server:
    port = servers.free_port()
    conf = tmp / "images.toml"
    conf.write_text(TOML.format(sim=sim_url))
    argv = ["-m", "gateway", "serve", "--config", str(conf), "--port", str(port)]
    proc = subprocess.Popen(
        servers.pinned(servers.SERVER_CORE, [sys.executable, *argv]),
        env=servers.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=servers.GATEWAY_ROOT,
    )
    servers.wait_port(port, proc)
    base = f"http://127.0.0.1:{port}"
    return servers.Server("gateway", proc, base + "/api/v1/assistants/default/ws", base)


async def turn(
    http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, base: str, conv: str,
    way: str, image: bytes, n: int,
) -> str:  # fmt: skip
    """One turn with ``image`` sent ``way``; the final frame's type."""
    if way == "frame":
        images: list[Any] = [data_url(image)]
    else:
        async with http.post(
            f"{base}/api/v1/images",
            params={"conversation_id": conv},
            data=image,
            headers={"Content-Type": "image/png", "Origin": base},
        ) as resp:
            body = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"upload refused: {resp.status} {body}")
        images = [{"id": body["id"]}]
    text = "What is this? sim:tokens=3 sim:delay_ms=0"
    await ws.send_str(
        json.dumps({"type": "message", "id": f"c-{n}", "text": text, "images": images})
    )
    del images
    while True:
        frame = json.loads((await ws.receive()).data)
        if frame["type"] in ("done", "error"):
            if frame["type"] == "error":
                print("  error:", frame, file=sys.stderr)
            return str(frame["type"])


def reset_peak(pid: int) -> None:
    """Set the process's ``VmHWM`` to its RSS now (proc(5), ``clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def sample(gateway: servers.Server, way: str, image: bytes) -> dict[str, Any]:
    pid, base = gateway.pid, gateway.http
    jar = aiohttp.CookieJar(unsafe=True)  # (the anonymous visitor's cookie, on an IP host)
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as http,
        http.ws_connect(gateway.url, headers={"Origin": base}) as ws,
    ):
        conv = json.loads((await ws.receive()).data)["conversation_id"]
        if await turn(http, ws, base, conv, way, png(1024), 1) != "done":
            raise RuntimeError("the warm-up turn failed")
        await asyncio.sleep(0.3)  # (the warm-up's last writes settle)
        reset_peak(pid)
        before = servers.memory_kb(pid, "VmRSS")
        t0 = time.perf_counter()
        outcome = await turn(http, ws, base, conv, way, image, 2)
        seconds = time.perf_counter() - t0
        peak = servers.memory_kb(pid, "VmHWM")
        after = servers.memory_kb(pid, "VmRSS")
    added = (peak - before) * 1024
    return {
        "way": way,
        "outcome": outcome,
        "rss_before_kb": before,
        "hwm_kb": peak,
        "rss_after_kb": after,
        "added_mb": added / 1e6,
        "ratio": added / len(image),
        "turn_s": seconds,
    }


async def measure(ways: list[str], rounds: int) -> list[dict[str, Any]]:
    image = png(IMAGE_BYTES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = servers.start("simulator", "", Path(tmp))
        try:
            for r in range(rounds):
                for way in ways:
                    gateway = start_gateway(sim.url, Path(tmp))
                    try:
                        row = await sample(gateway, way, image)
                    finally:
                        gateway.stop()
                    row["round"] = r + 1
                    rows.append(row)
                    print(
                        f"  {way:7} round {r + 1}: +{row['added_mb']:.1f} MB"
                        f" = {row['ratio']:.2f} x ({row['outcome']}, {row['turn_s']:.2f} s)",
                        file=sys.stderr,
                    )
        finally:
            sim.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"A {IMAGE_BYTES / 1e6:.2f} MB image: the gateway's peak RSS over its RSS before the turn",
        "| way | median added | x the image | samples (x) | target |",
        "|---|---|---|---|---|",
    ]
    for way in dict.fromkeys(row["way"] for row in rows):
        mine = [row for row in rows if row["way"] == way]
        ratio = statistics.median(row["ratio"] for row in mine)
        added = statistics.median(row["added_mb"] for row in mine)
        samples = " / ".join(f"{row['ratio']:.2f}" for row in mine)
        met = "met" if ratio <= TARGET else "NOT met"
        lines.append(f"| {way} | {added:.1f} MB | {ratio:.2f} x | {samples} | {met} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench images", description=__doc__)
    parser.add_argument("--way", action="append", choices=WAYS, help="only this way (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.way or list(WAYS), args.rounds))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"images-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(table(rows))
    print(f"\nwritten: {path}")
