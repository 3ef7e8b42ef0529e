"""``python -m bench [--scenario NAME ...] [--quick]``: run, then print and save the report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .run import run, scenario_specs

RESULTS = Path(__file__).resolve().parent / "results"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"machine: {report['machine']}",
        "",
        f"{'scenario':<17}{'server':<9}{'streams':>8}{'steps':>9}{'frames':>9}{'err':>5}"
        f"{'ttfd p50':>10}{'late p50':>10}{'late p99':>10}{'CPU ms/1k':>11}{'RSS MB':>8}",
    ]
    for name, body in report["scenarios"].items():
        rows = body["rows"]
        for row in rows:
            if "held" in row:
                lines.append(
                    f"{name:<17}{row['kind']:<9}{row['held']:>8}  RSS growth "
                    f"{row['rss_growth_mb']:.1f} MB = {row['kb_per_connection']:.1f} KB/connection"
                )
                continue
            lines.append(
                f"{name:<17}{row['kind']:<9}{row['streams']:>8}{row['steps']:>9}{row['frames']:>9}"
                f"{row['errors'] + row['mismatches']:>5}{row['ttfd_p50_ms']:>10.1f}"
                f"{row['late_p50_ms']:>10.1f}{row['late_p99_ms']:>10.1f}"
                f"{row['cpu_ms_per_1000_steps']:>11.1f}{row['peak_rss_mb']:>8.1f}"
            )
        by = {r["kind"]: r for r in rows if "kind" in r and "held" not in r}
        if "gateway" in by and "minimal" in by and by["minimal"]["cpu_ms_per_1000_steps"]:
            g, m, f = by["gateway"], by["minimal"], by.get("floor")
            ratio = g["cpu_ms_per_1000_steps"] / m["cpu_ms_per_1000_steps"]
            extra = ""
            if "fastapi" in by and by["fastapi"]["cpu_ms_per_1000_steps"]:
                fastapi = g["cpu_ms_per_1000_steps"] / by["fastapi"]["cpu_ms_per_1000_steps"]
                extra = f", vs FastAPI {fastapi:.2f}x"
            if f:
                extra += (
                    f"; added first-delta p50 {g['ttfd_p50_ms'] - f['ttfd_p50_ms']:+.1f} ms, "
                    f"p99 lateness {g['late_p99_ms'] - f['late_p99_ms']:+.1f} ms over the floor"
                    f" (minimal relay {m['late_p99_ms'] - f['late_p99_ms']:+.1f} ms)"
                )
            lines.append(f"{'':<17}gateway CPU / minimal relay: {ratio:.2f}x{extra}")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no chart")
        return
    names, series = [], {"gateway": [], "minimal": [], "fastapi": []}
    for name, body in report["scenarios"].items():
        rows = {r["kind"]: r for r in body["rows"] if "cpu_ms_per_1000_steps" in r}
        if "gateway" not in rows:
            continue
        names.append(name)
        for kind in series:
            series[kind].append(rows.get(kind, {}).get("cpu_ms_per_1000_steps", 0))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (kind, values) in enumerate(series.items()):
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=kind)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("server CPU ms per 1 000 steps")
    ax.set_title("qwen-gateway vs reference relays (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--scenario", action="append", choices=list(scenario_specs(False)))
    parser.add_argument("--quick", action="store_true", help="a fifth of the load, for a smoke run")
    args = parser.parse_args()
    report = run(args.scenario or list(scenario_specs(False)), args.quick)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"report-{stamp}.json").write_text(json.dumps(report, indent=2))
    chart(report, RESULTS / f"chart-{stamp}.png")
    print()
    print(table(report))
    print(f"\nwritten: bench/results/report-{stamp}.json, chart-{stamp}.png")


if __name__ == "__main__":
    main()
