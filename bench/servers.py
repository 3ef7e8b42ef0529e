"""The processes of a run: the simulator, the server under test, the load generator.

Each is its own process. With two cores or more, ``taskset`` pins the server under test to
core 1 and the simulator and the load generator to core 0, so the server has a core of its
own. CPU time (utime + stime) and memory (VmRSS, VmHWM) are read from ``/proc``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Where the gateway under test (and the simulator) is imported from: this tree, or another
# checkout of it (``BENCH_GATEWAY_ROOT=/path``) while this one is being edited.
GATEWAY_ROOT = Path(os.environ.get("BENCH_GATEWAY_ROOT") or ROOT).resolve()
CLK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
PINNED = CORES >= 2 and shutil.which("taskset") is not None
SERVER_CORE, LOAD_CORE = "1", "0"
KINDS = ("gateway", "minimal", "fastapi")
# Variants of the gateway row, added to every scenario with a gateway row when named in
# ``BENCH_VARIANTS`` (comma-separated), so a comparison is measured in the same run:
#   baseline  the gateway from another checkout (``BENCH_BASELINE_ROOT``): before/after a change
#   redis     this gateway with shared state in Redis (a redis-server the run starts)
#   quotas    this gateway with usage accounting and every quota on (none reached)
#   baseline_redis  the baseline checkout's gateway with shared state in Redis (as ``redis``)
VARIANTS = tuple(v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v)
BASELINE_ROOT = Path(os.environ.get("BENCH_BASELINE_ROOT") or ROOT).resolve()
QUOTAS_TOML = """
tokens_per_user_per_day = 1000000000
anonymous_tokens_per_ip_per_day = 1000000000
anonymous_messages_per_minute_per_ip = 1000000
"""

GATEWAY_TOML = """
[upstream]
kind = "dashscope"
base_url = "{sim}"
api_key = "bench"
incremental_output = true
max_retries = 0
[limits]
max_connections = 100000
max_connections_per_user = 100000
messages_per_minute = 1000000
max_replies_per_user = 100000
outbox_max_bytes = {outbox}
slow_consumer_timeout_s = 60
[log]
level = "warning"
"""
OUTBOX_MAX_BYTES = 256 * 1024  # the gateway's default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if PINNED else argv


def env(root: Path = GATEWAY_ROOT) -> dict[str, str]:
    path = os.pathsep.join(dict.fromkeys([str(root), str(ROOT)]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


def runqueue_wait_seconds(pid: int) -> float:
    """How long ``pid``'s main thread has waited, runnable, for a CPU (``/proc/PID/schedstat``):
    what other processes on its core cost it, which CPU time does not show."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def memory_kb(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    url: str  # what the load generator connects to
    http: str = ""  # the gateway's REST base

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def gateway_toml(kind: str, sim_url: str) -> str:
    """The benchmark's gateway configuration for ``kind`` (``gateway`` or a variant)."""
    text = GATEWAY_TOML.format(sim=sim_url, outbox=OUTBOX_MAX_BYTES)
    if kind == "quotas":
        text = text.replace("[limits]\n", "[limits]" + QUOTAS_TOML)
    if kind in ("redis", "baseline_redis"):
        text += f'[redis]\nurl = "{os.environ["BENCH_REDIS_URL"]}"\n'
    return text


def start(kind: str, sim_url: str, tmp: Path, log: Path | None = None) -> Server:
    """Start the simulator (``kind="simulator"``), the gateway (or a variant of it), or a
    reference relay."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    http = ""
    root = BASELINE_ROOT if kind in ("baseline", "baseline_redis") else GATEWAY_ROOT
    if kind in ("gateway", "redis", "baseline_redis", *VARIANTS):
        conf = tmp / f"{kind}.toml"
        conf.write_text(gateway_toml(kind, sim_url))
        argv = ["-m", "gateway", "serve", "--config", str(conf), "--port", str(port)]
        url, http = f"ws://127.0.0.1:{port}/api/v1/assistants/default/ws", base
    elif kind in ("minimal", "fastapi"):
        argv = ["-m", f"bench.{kind}_relay", sim_url, str(port)]
        url = f"ws://127.0.0.1:{port}/ws"
    elif kind == "simulator":
        argv = ["-m", "bench.simulator", str(port)]
        url = base
    else:
        raise ValueError(kind)
    core = LOAD_CORE if kind == "simulator" else SERVER_CORE
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        pinned(core, [sys.executable, *argv]),
        env=env(root),
        stdout=out,
        stderr=out,
        start_new_session=True,
        cwd=root,
    )
    wait_port(port, proc)
    return Server(kind, proc, url, http)


def start_redis(tmp: Path) -> subprocess.Popen[bytes]:
    """A redis-server for the ``redis`` variant, on the load core; sets ``BENCH_REDIS_URL``."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp)]  # fmt: skip
    proc = subprocess.Popen(pinned(LOAD_CORE, argv), stdout=subprocess.DEVNULL)
    wait_port(port, proc)
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    return proc


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator to the end; its JSON result."""
    argv = pinned(LOAD_CORE, [sys.executable, "-m", "bench.load", json.dumps(spec)])
    out = subprocess.run(
        argv,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=GATEWAY_ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Holder:
    """A load generator holding sockets open, driven line by line through stdin."""

    def __init__(self, spec: dict[str, Any]) -> None:
        argv = pinned(LOAD_CORE, [sys.executable, "-m", "bench.load", json.dumps(spec)])
        self.proc = subprocess.Popen(
            argv,
            env=env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=GATEWAY_ROOT,
        )

    def ready(self) -> int:
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"load generator: {line!r}")
        return int(line.split()[1])

    def command(self, word: str) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def quit(self) -> dict[str, Any]:
        result = self.command("quit")
        self.proc.wait(60)
        return result
