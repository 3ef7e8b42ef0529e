"""Scenarios: start the simulator, a server (the gateway or a reference relay) and the load
generator as separate processes, pinned apart with taskset, and read the server's CPU time
and peak RSS from /proc. Every figure is reported with the floor (the simulator read
directly by the same generator) or the reference relays measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CORES = os.cpu_count() or 1
SERVER_CORE, LOAD_CORE = ("1", "0") if CORES >= 2 else ("0", "0")

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
messages_per_minute = 0
max_replies_per_user = 100000
outbox_max_bytes = 262144
slow_consumer_timeout_s = 60
[log]
level = "warning"
format = "json"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") and CORES >= 2 else argv


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str  # what the load generator connects to

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(kind: str, sim_url: str, tmp: Path) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kind == "gateway":
        conf = tmp / "gateway.toml"
        conf.write_text(GATEWAY_TOML.format(sim=sim_url))
        argv = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(conf),
            "--port",
            str(port),
        ]
        url = f"ws://127.0.0.1:{port}/api/v1/assistants/default/ws"
    elif kind == "minimal":
        argv = [sys.executable, "-m", "bench.minimal_relay", sim_url, str(port)]
        url = f"ws://127.0.0.1:{port}/ws"
    elif kind == "fastapi":
        argv = [sys.executable, "-m", "bench.fastapi_relay", sim_url, str(port)]
        url = f"ws://127.0.0.1:{port}/ws"
    else:  # the simulator
        argv = [sys.executable, "-m", "gateway", "fake-upstream", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
    core = LOAD_CORE if kind == "simulator" else SERVER_CORE
    proc = subprocess.Popen(
        pinned(core, argv),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_port(port, proc)
    return Server(proc, url)


def load(
    spec: dict[str, Any], *, interactive: bool = False
) -> subprocess.Popen[str] | dict[str, Any]:
    argv = pinned(LOAD_CORE, [sys.executable, "-m", "bench.load", json.dumps(spec)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if interactive:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure_stream(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One streaming run against ``kind`` (or the floor): latency, CPU, RSS, correctness."""
    if kind == "floor":
        result = load({**spec, "mode": "sse", "url": sim.url})
        result.update(cpu_s=0.0, peak_rss_kb=0)
    else:
        server = start(kind, sim.url, tmp)
        try:
            cpu0 = cpu_seconds(server.proc.pid)
            result = load({**spec, "mode": spec.get("mode", "ws"), "url": server.url})
            result["cpu_s"] = cpu_seconds(server.proc.pid) - cpu0
            result["peak_rss_kb"] = rss_kb(server.proc.pid, "VmHWM")
        finally:
            server.stop()
    steps = max(1, result["steps"])
    summary = {
        "kind": kind,
        "streams": spec["connections"],
        "steps": result["steps"],
        "frames": result["frames"],
        "errors": result["error_count"],
        "mismatches": result["mismatches"],
        "ttfd_p50_ms": 1000 * pct(result["ttfd"], 50),
        "ttfd_p99_ms": 1000 * pct(result["ttfd"], 99),
        "late_p50_ms": 1000 * pct(result["late"], 50),
        "late_p99_ms": 1000 * pct(result["late"], 99),
        "cpu_ms_per_1000_steps": 1000 * result["cpu_s"] / steps * 1000,
        "peak_rss_mb": result["peak_rss_kb"] / 1024,
        "wall_s": result["wall_s"],
        "churned": result.get("churned", 0),
    }
    return summary


def measure_held(sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Idle or stalled sockets held open: the gateway's RSS beyond its baseline."""
    server = start("gateway", sim.url, tmp)
    try:
        time.sleep(0.5)
        base = rss_kb(server.proc.pid)
        proc = load({**spec, "url": server.url}, interactive=True)
        assert isinstance(proc, subprocess.Popen) and proc.stdout and proc.stdin
        line = proc.stdout.readline()
        held = int(line.split()[1]) if line.startswith("READY") else 0
        time.sleep(2 if spec["mode"] == "stall" else 1)  # let buffers settle
        grown = rss_kb(server.proc.pid) - base
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(120)
    finally:
        server.stop()
    return {
        "kind": "gateway",
        "mode": spec["mode"],
        "held": held,
        "rss_growth_mb": grown / 1024,
        "kb_per_connection": grown / max(1, held),
    }


def scenario_specs(quick: bool) -> dict[str, dict[str, Any]]:
    scale = 0.2 if quick else 1.0

    def n(x: int) -> int:
        return max(2, int(x * scale))

    return {
        "throughput": {"connections": n(50), "tokens": 2000, "delay_ms": 0},
        "paced": {"connections": n(500), "tokens": 100, "delay_ms": 20},
        "below_saturation": {"connections": n(100), "tokens": 100, "delay_ms": 20},
        "overload": {"connections": n(500), "tokens": 150, "delay_ms": 20},
        "churn": {
            "connections": n(100),
            "tokens": 100,
            "delay_ms": 20,
            "churners": 20,
            "mode": "churn",
        },
        "idle": {"connections": n(10000), "tokens": 1, "delay_ms": 0, "mode": "idle"},
        "slow_readers": {
            "connections": n(100),
            "tokens": 2000,
            "delay_ms": 0,
            "chars": 2_000_000,
            "mode": "stall",
        },
    }


def run(names: list[str], quick: bool) -> dict[str, Any]:
    specs = scenario_specs(quick)
    report: dict[str, Any] = {"machine": machine(), "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sim = start("simulator", "", tmp)
        try:
            for name in names:
                spec = specs[name]
                print(f"== {name} {spec}", flush=True)
                if spec.get("mode") in ("idle", "stall"):
                    rows = [measure_held(sim, tmp, spec)]
                else:
                    kinds = ["floor", "gateway", "minimal"]
                    if spec.get("churners"):
                        kinds = ["gateway", "minimal"]  # the floor has no sockets to churn
                    if name in ("throughput", "paced"):
                        kinds.append("fastapi")
                    rows = [measure_stream(k, sim, tmp, spec) for k in kinds]
                for row in rows:
                    print(
                        "   ",
                        json.dumps(
                            {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
                        ),
                        flush=True,
                    )
                report["scenarios"][name] = {"spec": spec, "rows": rows}
        finally:
            sim.stop()
    return report


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "cpus": CORES,
        "cpu": model,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"),
        "pinned": bool(shutil.which("taskset")) and CORES >= 2,
    }
