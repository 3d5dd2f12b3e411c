"""Run the benchmarks, one process each, and summarise their ratios and targets.

    .venv/bin/python -m bench [--quick] [--only inference,dedup] [--results DIR]

Each benchmark writes its own JSON report (see bench/harness.py); this prints a table of the
headline ratios and targets and writes `summary.json` beside the reports. It fails when a benchmark
fails or writes a report without a baseline comparison; a missed target is reported, not fatal:
benchmarks report numbers, tests assert behaviour.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import RESULTS_DIR, ROOT

BENCHMARKS = (
    "inference",
    "dedup",
    "ingest",
    "bot",
    "load",
    "train",
    "objectstore",
    "scale",
    "faces",
    "openset",
    "rescue",
    "scenes",
)
REQUIRED_KEYS = ("benchmark", "machine", "baseline", "candidate", "results", "ratios", "targets")


class BadReport(Exception):
    pass


def check_report(report: dict[str, Any]) -> None:
    """A report must compare a candidate with a baseline and say so with finite, positive ratios,
    or say why it skipped (a benchmark on data that is not in the repository)."""
    if isinstance(report.get("skipped"), str) and report["skipped"]:
        return
    missing = [key for key in REQUIRED_KEYS if key not in report]
    if missing:
        raise BadReport(f"missing {', '.join(missing)}")
    ratios = report["ratios"]
    if not isinstance(ratios, dict) or not ratios:
        raise BadReport("no ratios of candidate to baseline")
    for name, value in ratios.items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise BadReport(f"ratio {name} is {value!r}, not a finite positive number")
    for target in report["targets"]:
        if not {"name", "target", "measured", "met"} <= set(target):
            raise BadReport(f"target {target!r} lacks name, target, measured or met")


def run_one(name: str, quick: bool, results: Path, console: Console) -> dict[str, Any]:
    command = [sys.executable, "-m", f"bench.{name}", "--results", str(results)]
    if quick:
        command.append("--quick")
    console.rule(f"bench.{name}{' --quick' if quick else ''}")
    started = time.perf_counter()
    # stdout is the JSON (also written to a file); stderr (progress, logs) goes to the terminal.
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BadReport(f"bench.{name} exited with {done.returncode}")
    path = results / f"{name}.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadReport(f"bench.{name} wrote no readable report at {path}: {exc}") from exc
    check_report(report)
    report["wall_seconds"] = round(seconds, 1)
    return report


def table(reports: dict[str, dict[str, Any]]) -> Table:
    view = Table(title="namae benchmarks: candidate vs baseline, same run")
    for column in ("benchmark", "seconds", "ratios (candidate vs baseline)", "targets"):
        view.add_column(column)
    for name, report in reports.items():
        if report.get("skipped"):
            view.add_row(name, f"{report['wall_seconds']:.0f}", f"skipped: {report['skipped']}", "-")
            continue
        ratios = "\n".join(f"{key}: {value:g}" for key, value in report["ratios"].items())
        targets = "\n".join(
            f"{'met' if t['met'] else 'MISSED'}: {t['name']} {t['measured']} ({t['target']})"
            for t in report["targets"]
        )
        view.add_row(name, f"{report['wall_seconds']:.0f}", ratios, targets or "-")
    return view


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark (CI)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    names = [name for name in args.only.split(",") if name]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    results = args.results or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    results.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    started = time.perf_counter()
    reports: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for name in names:
        try:
            reports[name] = run_one(name, args.quick, results, console)
        except BadReport as exc:
            failures.append(str(exc))
            console.print(f"[red]{exc}[/red]")
    console.print(table(reports))
    summary = {
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures,
        "benchmarks": {
            name: {"ratios": r["ratios"], "targets": r["targets"], "seconds": r["wall_seconds"]}
            for name, r in reports.items()
        },
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"reports in {results}; {summary['seconds']:.0f} s in all")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
