"""``python -m bench [--scenario NAME ...] [--quick]``: run, print the table, save the report.

Writes ``bench/results/report-STAMP.json`` and ``chart-STAMP.png``. ``python -m bench page``
measures the chat page in Chromium instead (``bench/page.py``); ``python -m bench images``
what a 5 MB image adds to the gateway's peak RSS (``bench/images.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .report import chart, table, targets_table
from .run import run, scenario_specs

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    if sys.argv[1:2] == ["page"]:
        from .page import main as page

        page(sys.argv[2:])
        return
    if sys.argv[1:2] == ["images"]:
        from .images import main as images

        images(sys.argv[2:])
        return
    names = list(scenario_specs())
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario", action="append", choices=names, help="run this one (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="a fifth of the load: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports go")
    args = parser.parse_args()
    report = run(args.scenario or names, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"report-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    drawn = chart(report, args.out / f"chart-{stamp}.png")
    print()
    print(table(report))
    print()
    print(targets_table(report))
    print(f"\nwritten: {path}" + (f" and chart-{stamp}.png" if drawn else ""))


if __name__ == "__main__":
    main()
