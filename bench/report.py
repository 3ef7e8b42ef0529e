"""The report: a table, the targets of issue 7 judged on this run's figures, and a chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def _rows(report: dict[str, Any], scenario: str) -> dict[str, Row]:
    body = report["scenarios"].get(scenario)
    return {r["kind"]: r for r in body["rows"]} if body else {}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _waited(row: dict[str, Any]) -> str:
    """The share of the wall time the server waited for its core (reports before it: -)."""
    waited = row.get("server_runqueue_wait_s")
    if waited is None or not row.get("cpu_ms_per_1000_steps") or not row["wall_s"]:
        return "-"
    return f"{waited / row['wall_s']:.0%}"


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpus']} x {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"pinned={m['pinned']}, {m['date']}",
        "",
        f"{'scenario':<17}{'server':<8}{'streams':>8}{'steps':>9}{'frames':>9}{'err':>4}"
        f"{'ttfd p50':>10}{'late p50':>10}{'late p99':>10}{'CPU ms/1k':>10}{'RSS MB':>8}"
        f"{'steps/s':>9}{'core0':>7}{'waited':>8}",
    ]
    for name, body in report["scenarios"].items():
        for row in body["rows"]:
            if "failover" in row:
                lines.append(_failover_line(name, row))
                continue
            if "held" in row:
                extra = ""
                if row["mode"] == "stall":
                    extra = (
                        f", reply logs {row['reply_logs_mb']:.1f} MB (+ history "
                        f"{row['history_mb']:.1f} MB), beyond them {row['beyond_logs_mb']:.1f} MB"
                        f" ({row['beyond_logs_and_history_mb']:.1f} MB beyond both)"
                    )
                    if row.get("budget_mb"):
                        extra += f" (budget {row['budget_mb']:.0f} MB)"
                lines.append(
                    f"{name:<17}{row['kind']:<8}{row['held']:>8} held: RSS +"
                    f"{row['rss_growth_mb']:.1f} MB = {row['kb_per_connection']:.1f} KB each"
                    + extra
                )
                continue
            late = row["late_p50_ms"] or row["late_p99_ms"]
            lines.append(
                f"{name:<17}{row['kind']:<8}{row['streams']:>8}{row['steps']:>9}"
                f"{row['frames']:>9}{row['errors'] + row['mismatches']:>4}"
                f"{row['ttfd_p50_ms']:>10.1f}"
                f"{_ms(row['late_p50_ms'] if late else None):>10}"
                f"{_ms(row['late_p99_ms'] if late else None):>10}"
                f"{_ms(row['cpu_ms_per_1000_steps']):>10}"
                f"{row['peak_rss_mb'] or 0:>8.1f}{row['steps_per_s']:>9.0f}"
                f"{row['core0_busy']:>7.0%}"
                f"{_waited(row):>8}"
            )
        lines.extend(_remote_viewers(body["rows"]))
        if name == "failover" and (added := _failover_added(report)) is not None:
            pool = _rows(report, name)["pool"]
            lines.append(
                " " * 17 + f"failover after a 429 adds {added[0]:+.1f} ms to the first delta p50"
                f" ({added[1]:+.1f} ms max over max); over the same pool's turns while it cools"
                f" down {pool['ttfd_p50_ms'] - pool['cooled_ttfd_p50_ms']:+.1f} ms"
            )
        churned = [f"{r['kind']} {r['churned']}" for r in body["rows"] if r.get("churned")]
        if churned:
            lines.append(" " * 17 + "sockets opened and closed meanwhile: " + ", ".join(churned))
        lines.extend(_ratios(_rows(report, name)))
    return "\n".join(lines)


def _remote_viewers(rows: list[Row]) -> list[str]:
    """For ``pair`` rows: the remote viewers' lateness beside the local ones'."""
    return [
        " " * 17 + f"{r['kind']}: remote viewer lateness p50 {r['remote_late_p50_ms']:.1f} ms, "
        f"p99 {r['remote_late_p99_ms']:.1f} ms ({r['remote_late_p99_ms'] - r['late_p99_ms']:+.1f}"
        f" over the local viewer's); second instance CPU "
        f"{r['remote_cpu_ms_per_1000_steps']:.1f} ms/1k steps"
        for r in rows
        if "remote_late_p99_ms" in r
    ]


def _failover_line(name: str, row: Row) -> str:
    """A row of the failover scenario (``bench/failover.py``)."""
    text = (
        f"{name:<17}{row['kind']:<8}{row['rounds']:>8} turns: first delta p50 "
        f"{row['ttfd_p50_ms']:.1f} ms, max {row['ttfd_max_ms']:.1f}"
    )
    if row["kind"] == "pool":
        text += (
            f" after a 429; while it cools down p50 {row['cooled_ttfd_p50_ms']:.1f} ms, max "
            f"{row['cooled_ttfd_max_ms']:.1f}; the 429 upstream asked {row['throttled_requests']}"
            f" times in {row['rounds']} rounds ({row['throttled_asked_when_cooled']} while"
            " cooling down)"
        )
    if row["errors"]:
        text += f", {row['errors']} errors {row['error_samples']}"
    return text


def _failover_added(report: dict[str, Any]) -> tuple[float, float, bool] | None:
    """What failing over after a 429 adds to the first delta (p50 and max, ms), and whether
    the cooled-down upstream was left alone (asked once a round, never while cooling)."""
    rows = _rows(report, "failover")
    single, pool = rows.get("single"), rows.get("pool")
    if not single or not pool:
        return None
    added = pool["ttfd_p50_ms"] - single["ttfd_p50_ms"]
    added_max = pool["ttfd_max_ms"] - single["ttfd_max_ms"]
    alone = (
        pool["throttled_asked_when_cooled"] == 0 and pool["throttled_requests"] == pool["rounds"]
    )
    return added, added_max, alone


def _ratios(rows: dict[str, Row]) -> list[str]:
    g, m, f, fa = rows.get("gateway"), rows.get("minimal"), rows.get("floor"), rows.get("fastapi")
    if not g or "held" in g or not m:
        return []
    key = "cpu_ms_per_1000_steps"
    parts = [f"gateway CPU / minimal {g[key] / m[key]:.2f}x"]
    if fa:
        parts.append(f"/ fastapi {g[key] / fa[key]:.2f}x")
    if f:
        parts.append(
            f"added over the floor: first delta p50 {g['ttfd_p50_ms'] - f['ttfd_p50_ms']:+.1f} ms "
            f"(minimal {m['ttfd_p50_ms'] - f['ttfd_p50_ms']:+.1f}), lateness p99 "
            f"{g['late_p99_ms'] - f['late_p99_ms']:+.1f} ms "
            f"(minimal {m['late_p99_ms'] - f['late_p99_ms']:+.1f})"
        )
    lines = [" " * 17 + ", ".join(parts)]
    for variant in ("baseline", "redis", "quotas"):
        v = rows.get(variant)
        if v and v.get(key) and g[key]:
            lines.append(
                " " * 17 + f"{variant} CPU / gateway {v[key] / g[key]:.2f}x, lateness p99 "
                f"{v['late_p99_ms'] - g['late_p99_ms']:+.1f} ms, first delta p50 "
                f"{v['ttfd_p50_ms'] - g['ttfd_p50_ms']:+.1f} ms"
            )
    return lines


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of issue 7 this run has the figures for."""
    out: list[tuple[str, str, bool | None]] = []

    def cpu(scenario: str, kind: str) -> float | None:
        row = _rows(report, scenario).get(kind)
        return row["cpu_ms_per_1000_steps"] if row else None

    def cpu_ratio(target: str, names: tuple[str, ...], other: str, bound: float) -> None:
        ratios = []
        for name in names:
            g, o = cpu(name, "gateway"), cpu(name, other)
            if g and o:
                ratios.append((name, g / o))
        if ratios:
            measured = ", ".join(f"{n} {r:.2f}x" for n, r in ratios)
            out.append((target, measured, all(r <= bound for _, r in ratios)))

    cpu_ratio(
        "CPU per step <= 1.25 x minimal relay",
        ("paced", "below_saturation", "overload", "churn"),
        "minimal",
        1.25,
    )
    cpu_ratio("CPU per step <= 2/3 x FastAPI relay", ("throughput", "paced"), "fastapi", 2 / 3)
    g, m = cpu("throughput", "gateway"), cpu("throughput", "minimal")
    if g and m:
        out.append(("at saturation <= 1.0 x minimal relay", f"throughput {g / m:.2f}x", g <= m))
    rows = _rows(report, "below_saturation")
    if {"gateway", "minimal", "floor"} <= rows.keys():
        gw, mi, fl = rows["gateway"], rows["minimal"], rows["floor"]
        d = gw["late_p99_ms"] - mi["late_p99_ms"]
        out.append(("below saturation: p99 lateness <= minimal + 5 ms", f"{d:+.1f} ms", d <= 5))
        d = gw["ttfd_p50_ms"] - fl["ttfd_p50_ms"]
        out.append(("below saturation: first delta p50 < floor + 2 ms", f"{d:+.1f} ms", d < 2))
    rows = _rows(report, "overload")
    if "gateway" in rows:
        gw = rows["gateway"]
        whole = gw["errors"] == 0 and gw["mismatches"] == 0 and gw["replies"] == gw["streams"]
        text = f"p99 {gw['late_p99_ms']:.0f} ms"
        for kind in ("minimal", "floor"):
            if kind in rows:
                text += f" ({kind} {rows[kind]['late_p99_ms']:.0f} ms)"
        text += ", every character delivered" if whole else ", TEXT LOST OR ERRORS"
        out.append(("overload: p99 lateness < 250 ms, all text", text, gw["late_p99_ms"] < 250))
    for variant, bound, scenarios in (
        ("quotas", 1.05, ("paced", "below_saturation")),  # issue 17
        ("redis", 1.3, ("paced", "below_saturation")),  # issue 18 (500 and 100 paced)
    ):
        ratios = [
            (name, v / g)
            for name in scenarios
            if (v := cpu(name, variant)) and (g := cpu(name, "gateway"))
        ]
        if ratios:
            measured = ", ".join(f"{n} {r:.2f}x" for n, r in ratios)
            target = f"{variant}: CPU per step <= {bound} x the gateway's"
            out.append((target, measured, all(r <= bound for _, r in ratios)))
    rows = _rows(report, "local_lateness")
    if {"gateway", "redis"} <= rows.keys():  # issue 18, where neither queues
        median, each = _added_lateness(rows["redis"], rows["gateway"])
        measured = f"{median:+.1f} ms (rounds {', '.join(f'{d:+.1f}' for d in each)})"
        target = "redis: local viewer p99 lateness <= gateway + 5 ms (2 500 steps/s)"
        out.append((target, measured, median <= 5))
    rows = _rows(report, "below_saturation")
    if {"gateway", "redis"} <= rows.keys():  # issue 18, at 100 streams
        d = rows["redis"]["late_p99_ms"] - rows["gateway"]["late_p99_ms"]
        target = "redis: local viewer p99 lateness <= gateway + 5 ms (100 streams)"
        out.append((target, f"{d:+.1f} ms", d <= 5))
    row = _rows(report, "remote_viewers").get("redis")
    if row:  # issue 18
        d = row["remote_late_p99_ms"] - row["late_p99_ms"]
        out.append(("redis: remote viewer p99 lateness <= local + 10 ms", f"{d:+.1f} ms", d <= 10))
    if (added := _failover_added(report)) is not None:  # issue 17
        p50, worst, alone = added
        text = f"{p50:+.1f} ms p50, {worst:+.1f} ms max; " + (
            "the cooled-down upstream not retried" if alone else "THE COOLED-DOWN UPSTREAM ASKED"
        )
        target = "failover: < 50 ms added to the first delta after a 429"
        out.append((target, text, p50 < 50 and alone))

    rows = _rows(report, "reasoning")  # issue 16
    if {"gateway", "gateway+reasoning"} <= rows.keys():
        plain, mixed = rows["gateway"], rows["gateway+reasoning"]
        key = "cpu_ms_per_1000_steps"
        # Each round's pair ran back to back: their ratio cancels a load that drifts.
        pairs = [
            m[key] / p[key] for p, m in zip(plain["rounds"], mixed["rounds"], strict=True) if p[key]
        ]
        ratio = statistics.median(pairs) if pairs else mixed[key] / plain[key]
        spread = [r[key] for r in plain["rounds"]]
        noise = (max(spread) - min(spread)) / plain[key] if plain[key] else 0.0
        text = (
            f"{ratio:.2f}x (median of {len(pairs)} paired rounds: "
            + " / ".join(f"{r:.2f}" for r in pairs)
            + f"; rounds without reasoning spread {noise:.0%})"
        )
        target = "reasoning: CPU per step <= without (within the rounds' spread)"
        out.append((target, text, ratio <= 1 + max(noise, 0.05)))
    rows = _rows(report, "idle")
    if "gateway" in rows:
        gw = rows["gateway"]
        text = f"{gw['kb_per_connection']:.1f} KB, {gw['held']} held"
        out.append(("idle: <= 20 KB per connection", text, gw["kb_per_connection"] <= 20))
    rows = _rows(report, "slow_readers")
    if "gateway" in rows:
        gw = rows["gateway"]
        text = (
            f"{gw['beyond_logs_mb']:.1f} MB beyond {gw['reply_logs_mb']:.1f} MB of reply logs"
            f" ({gw['beyond_logs_and_history_mb']:.1f} MB beyond logs and history)"
        )
        out.append(
            (
                f"slow readers: <= {gw['held']} x outbox_max_bytes = {gw['budget_mb']:.0f} MB",
                text,
                gw["beyond_logs_mb"] <= gw["budget_mb"],
            )
        )
    return out


def _added_lateness(row: Row, base: Row) -> tuple[float, list[float]]:
    """``row``'s p99 lateness over ``base``'s: the median of the rounds' differences (rounds
    taken in turn, so each difference compares one moment of the machine), and each."""
    pairs = zip(row.get("rounds", [row]), base.get("rounds", [base]), strict=True)
    each = [r["late_p99_ms"] - b["late_p99_ms"] for r, b in pairs]
    return statistics.median(each), each


def targets_table(report: dict[str, Any]) -> str:
    rows = targets(report)
    width = max((len(t) for t, _, _ in rows), default=10)
    return "\n".join(
        f"{'met   ' if ok else 'MISSED' if ok is False else '?     '} {t:<{width}}  {measured}"
        for t, measured, ok in rows
    )


def chart(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart")
        return False
    kinds = ["floor", "gateway", "minimal", "fastapi"]
    colors = {"floor": "#999999", "gateway": "#1f77b4", "minimal": "#ff7f0e", "fastapi": "#2ca02c"}
    streaming = [
        n
        for n, b in report["scenarios"].items()
        if b["rows"] and "held" not in b["rows"][0] and "failover" not in b["rows"][0]
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [3, 3, 1.4]})
    for ax, key, label in (
        (axes[0], "cpu_ms_per_1000_steps", "server CPU ms per 1 000 steps"),
        (axes[1], "late_p99_ms", "p99 lateness per step, ms"),
    ):
        for i, kind in enumerate(kinds):
            xs, ys = [], []
            for x, name in enumerate(streaming):
                row = _rows(report, name).get(kind)
                if row and row.get(key):
                    xs.append(x + (i - 1.5) * 0.2)
                    ys.append(row[key])
            if xs:
                ax.bar(xs, ys, 0.2, label=kind, color=colors[kind])
        ax.set_xticks(range(len(streaming)), [n.replace("_", "\n") for n in streaming])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    idle = _rows(report, "idle")
    names = [k for k in kinds if k in idle]
    kb = [idle[k]["kb_per_connection"] for k in names]
    axes[2].bar(names, kb, color=[colors[k] for k in names])
    axes[2].axhline(20, color="red", linestyle="--", linewidth=1, label="target 20 KB")
    axes[2].set_ylabel("RSS KB per idle connection")
    axes[2].legend()
    m = report["machine"]
    fig.suptitle(f"qwen-gateway vs reference relays — {m['cpus']} x {m['cpu']}, {m['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
