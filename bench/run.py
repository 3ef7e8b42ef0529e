"""Scenarios, and how each row of a scenario is measured.

A streaming row starts a fresh server (or none, for the floor), warms it with two short
chats, then runs the load generator and reads the server's CPU time and peak RSS. A held
row opens sockets and reads the server's RSS beyond its baseline. Every row of a run reads
the same simulator process, so the floor and the relays are measured under the same
conditions as the gateway.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import failover, servers
from .servers import Holder, Server, cpu_seconds, memory_kb

WARMUP = {"connections": 2, "tokens": 5, "delay_ms": 0}


def scenario_specs(quick: bool = False) -> dict[str, dict[str, Any]]:
    scale = 0.2 if quick else 1.0

    def n(x: int) -> int:
        return max(2, int(x * scale))

    relays = ["floor", "gateway", "minimal"]
    return {
        "throughput": {
            "connections": n(50), "tokens": 2000, "delay_ms": 0,
            "servers": [*relays, "fastapi"],
        },
        "paced": {
            "connections": n(500), "tokens": 100, "delay_ms": 20,
            "servers": [*relays, "fastapi"],
        },
        "below_saturation": {  # 5 000 steps/s offered; arrivals spread over a second
            "connections": n(100), "tokens": 100, "delay_ms": 20, "ramp_s": 1.0,
            "rounds": 3, "servers": relays,
        },
        "overload": {  # 25 000 steps/s offered for 3 s
            "connections": n(500), "tokens": 150, "delay_ms": 20, "servers": relays,
        },
        "churn": {  # 20 sockets, each opened and closed every 50 ms: 400 a second
            "connections": n(100), "tokens": 100, "delay_ms": 20, "churners": 20, "churn_ms": 50,
            "rounds": 3, "servers": relays,
        },
        "remote_viewers": {  # issue 18: below_saturation's load on two instances, one Redis
            "connections": n(100), "tokens": 100, "delay_ms": 20, "ramp_s": 1.0, "rounds": 3,
            "mode": "pair", "servers": ["redis"],
        },
        # issue 18: a local viewer's lateness in Redis mode against memory mode, judged where
        # neither queues: half below_saturation's load (2 500 steps/s). At 5 000 steps/s a
        # 2-vCPU EPYC's memory gateway already fills its core at the plateau, so there the
        # difference measures a queue (docs/performance.md). Rounds interleaved by kind.
        "local_lateness": {
            "connections": n(50), "tokens": 100, "delay_ms": 20, "ramp_s": 1.0, "rounds": 5,
            "interleave": True, "servers": ["floor", "gateway", "redis"],
        },
        "idle": {
            "connections": n(10_000), "tokens": 1, "delay_ms": 0, "mode": "idle",
            "servers": ["gateway", "minimal", "fastapi"],
        },
        "reasoning": {  # below_saturation, and beside it the same with half the steps reasoning
            "connections": n(100), "tokens": 100, "delay_ms": 20, "ramp_s": 1.0,
            "rounds": 5, "reasoning_share": 0.5, "servers": ["gateway"],
        },
        "slow_readers": {
            "connections": n(100), "tokens": 2000, "delay_ms": 0, "chars": 6_000_000,
            "mode": "stall", "servers": ["gateway", "minimal"],
        },
        "failover": {  # issue 17: a 429 from the pool's first upstream (bench/failover.py)
            "rounds": n(20), "tokens": 5, "delay_ms": 20, "mode": "failover",
            "servers": ["single", "pool"],
        },
    }  # fmt: skip


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def stream_once(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in spec.items() if k not in ("servers", "rounds", "interleave")}
    server = None
    if kind == "floor":
        url, mode = sim.url, "sse"
        spec["churners"] = 0  # the simulator has no sockets to churn
    else:
        server = servers.start(kind, sim.url, tmp)
        url, mode = server.url, "ws"
    try:
        servers.load({**WARMUP, "mode": mode, "url": url})
        cpu0 = cpu_seconds(server.pid) if server else 0.0
        wait0 = servers.runqueue_wait_seconds(server.pid) if server else 0.0
        sim0 = cpu_seconds(sim.pid)
        result = servers.load({**spec, "mode": mode, "url": url})
        cpu = cpu_seconds(server.pid) - cpu0 if server else 0.0
        waited = servers.runqueue_wait_seconds(server.pid) - wait0 if server else 0.0
        sim_cpu = cpu_seconds(sim.pid) - sim0
        peak = memory_kb(server.pid, "VmHWM") if server else 0
    finally:
        if server:
            server.stop()
    return stream_row(
        kind,
        spec,
        result,
        cpu=cpu if server else None,
        sim_cpu=sim_cpu,
        peak_kb=peak,
        waited=waited,
    )


def stream_row(
    kind: str,
    spec: dict[str, Any],
    result: dict[str, Any],
    *,
    cpu: float | None,
    sim_cpu: float,
    peak_kb: int,
    waited: float | None = None,
) -> dict[str, Any]:
    """A row from what the load generator reported and the processes' counters (``cpu``
    None: no server, the floor)."""
    steps = max(1, result["steps"])
    wall = result["wall_s"]
    row = {
        "kind": kind,
        "streams": spec["connections"],
        "replies": result["replies"],
        "steps": result["steps"],
        "frames": result["frames"],
        "chars": result["chars"],
        "errors": result["error_count"],
        "error_samples": result["errors"],
        "mismatches": result["mismatches"],
        "ttfd_p50_ms": 1000 * pct(result["ttfd"], 50),
        "ttfd_p99_ms": 1000 * pct(result["ttfd"], 99),
        "late_p50_ms": 1000 * pct(result["late"], 50),
        "late_p99_ms": 1000 * pct(result["late"], 99),
        "late_max_ms": 1000 * max(result["late"], default=0.0),
        "cpu_s": cpu or 0.0,
        "cpu_ms_per_1000_steps": 1e6 * cpu / steps if cpu is not None else None,
        "peak_rss_mb": peak_kb / 1024,
        "wall_s": wall,
        "steps_per_s": result["steps"] / wall if wall else 0.0,
        "core0_busy": (sim_cpu + result["load_cpu_s"]) / wall if wall else 0.0,
        "churned": result.get("churned", 0),
    }
    if waited is not None:
        # Seconds the server was runnable but another process had its core: with this
        # above a few percent of the wall time, its lateness measures the machine.
        row["server_runqueue_wait_s"] = waited
    return row


def measure_stream(
    kind: str, sim: Server, tmp: Path, spec: dict[str, Any], once: Any = stream_once
) -> dict[str, Any]:
    """One row; with ``rounds`` > 1 each figure is the median over the rounds."""
    rounds = [once(kind, sim, tmp, spec) for _ in range(spec.get("rounds", 1))]
    return rounds[0] if len(rounds) == 1 else median_row(rounds)


def median_row(rounds: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """One row of several rounds of a kind: each figure the median, errors summed, and each
    round's ttfd, p99 lateness and CPU kept in ``rounds``; ``fields`` replace the first's."""
    row = dict(rounds[0], **fields)
    for key, value in row.items():
        if isinstance(value, float):
            row[key] = statistics.median(r[key] for r in rounds)
        elif key in ("errors", "mismatches"):
            row[key] = sum(r[key] for r in rounds)
    row["rounds"] = [
        {k: r[k] for k in ("ttfd_p50_ms", "late_p99_ms", "cpu_ms_per_1000_steps")} for r in rounds
    ]
    return row


def measure_interleaved(
    kinds: list[str], sim: Server, tmp: Path, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """A row per kind, their rounds taken in turn (round 1 of each kind, then round 2, ...),
    so a drift of the machine's load reaches every kind alike; each figure the median."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(spec.get("rounds", 1)):
        for kind in kinds:
            runs[kind].append(stream_once(kind, sim, tmp, spec))
    return [median_row(rounds) for rounds in runs.values()]


def pair_once(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Two instances of ``kind`` (a Redis mode) on the run's Redis: every chat on the first,
    its conversation watched from the second too (``bench.load``'s ``pair`` mode). The row's
    CPU is the first instance's (it produces every reply); the second's is beside it."""
    spec = {k: v for k, v in spec.items() if k not in ("servers", "rounds")}
    first = servers.start(kind, sim.url, tmp)
    second = None
    try:
        second = servers.start(kind, sim.url, tmp)
        for server in (first, second):
            servers.load({**WARMUP, "mode": "ws", "url": server.url})
        cpu0, remote0, sim0 = (cpu_seconds(p) for p in (first.pid, second.pid, sim.pid))
        result = servers.load(
            {**spec, "url": first.url, "http": first.http, "remote_url": second.url}
        )
        cpu = cpu_seconds(first.pid) - cpu0
        remote_cpu = cpu_seconds(second.pid) - remote0
        sim_cpu = cpu_seconds(sim.pid) - sim0
        peak = memory_kb(first.pid, "VmHWM")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    steps = max(1, result["steps"])
    return {
        **stream_row(kind, spec, result, cpu=cpu, sim_cpu=sim_cpu, peak_kb=peak),
        "remote_late_p50_ms": 1000 * pct(result["remote_late"], 50),
        "remote_late_p99_ms": 1000 * pct(result["remote_late"], 99),
        "remote_late_max_ms": 1000 * max(result["remote_late"], default=0.0),
        "remote_cpu_ms_per_1000_steps": 1e6 * remote_cpu / steps,
    }


def measure_pair(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """A ``pair`` row (:func:`pair_once`); with ``rounds`` > 1 the medians over the rounds."""
    return measure_stream(kind, sim, tmp, spec, once=pair_once)


def measure_reasoning(
    kind: str, sim: Server, tmp: Path, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """Two rows of ``kind``: replies of ``tokens`` answer steps, and replies of as many steps
    of which ``reasoning_share`` are reasoning (``sim:reasoning``), the rounds interleaved;
    each figure the median over the rounds. The second row's kind is ``kind+reasoning``."""
    total = spec["tokens"]
    thinking = int(total * spec["reasoning_share"])
    plain = {k: v for k, v in spec.items() if k != "reasoning_share"}
    mixed = {**plain, "tokens": total - thinking, "reasoning": thinking}
    runs: dict[str, list[dict[str, Any]]] = {kind: [], f"{kind}+reasoning": []}
    for _ in range(spec.get("rounds", 1)):
        runs[kind].append(stream_once(kind, sim, tmp, plain))
        runs[f"{kind}+reasoning"].append(stream_once(kind, sim, tmp, mixed))
    return [median_row(rounds, kind=name) for name, rounds in runs.items()]


def measure_held(kind: str, sim: Server, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Sockets held open (idle, or stalled readers): the server's RSS beyond its baseline."""
    server = servers.start(kind, sim.url, tmp)
    try:
        servers.load({**WARMUP, "mode": "ws", "url": server.url})
        time.sleep(0.5)
        base = memory_kb(server.pid)
        holder = Holder({**spec, "url": server.url, "http": server.http, "servers": None})
        held = holder.ready()
        rss = settle(server.pid, 1.0 if spec["mode"] == "idle" else 3.0)
        logs = holder.command("measure")
        result = holder.quit()
    finally:
        server.stop()
    grown = rss - base
    row = {
        "kind": kind,
        "mode": spec["mode"],
        "held": held,
        "errors": result["error_count"],
        "baseline_rss_mb": base / 1024,
        "rss_growth_mb": grown / 1024,
        "kb_per_connection": grown / max(1, held),
    }
    if spec["mode"] == "stall":
        log_bytes, history = logs.get("reply_log_bytes", 0), logs.get("history_bytes", 0)
        row["reply_states"] = logs.get("states", {})
        row["reply_logs_mb"] = log_bytes / 2**20
        row["history_mb"] = history / 2**20
        row["beyond_logs_mb"] = (grown * 1024 - log_bytes) / 2**20
        row["beyond_logs_and_history_mb"] = (grown * 1024 - log_bytes - history) / 2**20
        row["budget_mb"] = held * servers.OUTBOX_MAX_BYTES / 2**20 if kind == "gateway" else None
    return row


def settle(pid: int, quiet_s: float, limit_s: float = 20.0) -> int:
    """The RSS once it has stopped moving (by more than 1 MB either way: the gateway hands
    freed heap pages back every 2 s) for ``quiet_s``."""
    deadline = time.monotonic() + limit_s
    last, since = memory_kb(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = memory_kb(pid)
        if abs(now - last) > 1024:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return memory_kb(pid)


def run(names: list[str], quick: bool) -> dict[str, Any]:
    specs = scenario_specs(quick)
    report: dict[str, Any] = {"machine": machine(), "quick": quick, "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with_redis = {"redis", "baseline_redis"} & set(servers.VARIANTS)
        with_redis |= {n for n in names if "redis" in specs[n].get("servers", ())}
        redis = servers.start_redis(tmp) if with_redis else None
        sim = servers.start("simulator", "", tmp)
        try:
            for name in names:
                spec = specs[name]
                print(f"== {name} {spec}", flush=True)
                measure = measure_held if spec.get("mode") in ("idle", "stall") else measure_stream
                if spec.get("mode") == "pair":
                    measure = measure_pair
                if spec.get("mode") == "failover":
                    measure = failover.measure
                rows = []
                kinds = list(spec["servers"])
                if "redis" in kinds and "baseline_redis" in servers.VARIANTS:
                    kinds.append("baseline_redis")
                if "gateway" in kinds:
                    at = kinds.index("gateway") + 1
                    kinds[at:at] = servers.VARIANTS
                kinds = list(dict.fromkeys(kinds))  # a variant the scenario names already
                if spec.get("interleave"):
                    rows = measure_interleaved(kinds, sim, tmp, spec)
                    for row in rows:
                        print("  ", brief(row), flush=True)
                    report["scenarios"][name] = {"spec": spec, "rows": rows}
                    continue
                for kind in kinds:
                    if "reasoning_share" in spec:
                        for row in measure_reasoning(kind, sim, tmp, spec):
                            rows.append(row)
                            print("  ", brief(row), flush=True)
                        continue
                    rows.append(measure(kind, sim, tmp, spec))
                    print("  ", brief(rows[-1]), flush=True)
                report["scenarios"][name] = {"spec": spec, "rows": rows}
        finally:
            sim.stop()
            if redis is not None:
                redis.terminate()
                redis.wait()
    return report


def brief(row: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in row.items()
        if not isinstance(v, list)
    )


def machine() -> dict[str, Any]:
    import platform
    import sys
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "?")
    total = next(
        int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
        if x.startswith("MemTotal:")
    )  # fmt: skip
    return {
        "cpus": servers.CORES,
        "cpu": model,
        "memory_gb": round(total / 2**20, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "pinned": servers.PINNED,
        "gateway_root": str(servers.GATEWAY_ROOT),
        "variants": list(servers.VARIANTS),
        "baseline_root": (
            str(servers.BASELINE_ROOT)
            if any(v.startswith("baseline") for v in servers.VARIANTS)
            else None
        ),
        "packages": {
            name: version(name) for name in ("aiohttp", "uvloop", "fastapi", "httpx", "uvicorn")
        },
    }
