"""What every benchmark shares: timing, summaries, the machine's description and the JSON report.

A benchmark times its candidate and its baseline in the same process, interleaved round by round
(`interleave`), so that load from elsewhere on a noisy machine falls on both alike; it reports
medians and ratios, never single runs. `emit` prints the report as JSON and writes it to
`bench/results/<name>.json` (or `bench/results/quick/` for a `--quick` smoke run, which is not a
measurement and is not committed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASCADE = ROOT.parent / "shared" / "data" / "lbpcascade_animeface.xml"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    text = doc or ""
    result = argparse.ArgumentParser(description=text, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes (for CI)")
    result.add_argument("--results", type=Path, default=None, help="folder for the JSON report")
    result.add_argument("--seed", type=int, default=1234)
    return result


def cascade_path() -> Path:
    """The anime face cascade: NAMAE_FACES__CASCADE_PATH, else ../shared/data beside the checkout."""
    configured = os.environ.get("NAMAE_FACES__CASCADE_PATH")
    path = Path(configured) if configured else DEFAULT_CASCADE
    if not path.is_file():
        raise SystemExit(f"the anime face cascade is not at {path}; set NAMAE_FACES__CASCADE_PATH")
    return path


def time_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def interleave(
    contenders: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Milliseconds per call of each contender, measured round-robin so drift hits all alike."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            samples[name].append(time_ms(fn))
    return samples


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): a value that was measured, not interpolated
    (numpy's `inverted_cdf`: the smallest value with at least q% of the values at or below it)."""
    return float(np.percentile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


def summary(values_ms: list[float], digits: int = 3) -> dict[str, float | int]:
    if not values_ms:
        raise ValueError("no samples to summarise")
    return {
        "n": len(values_ms),
        "median_ms": round(statistics.median(values_ms), digits),
        "p95_ms": round(percentile(values_ms, 95), digits),
        "p99_ms": round(percentile(values_ms, 99), digits),
        "min_ms": round(min(values_ms), digits),
    }


def ratio(numerator: float, denominator: float, digits: int = 3) -> float:
    return round(numerator / denominator, digits) if denominator else float("inf")


@dataclass(frozen=True)
class Target:
    """A figure the project promises, and whether this run met it."""

    name: str
    limit: float
    measured: float
    unit: str
    lower_is_better: bool = True

    @property
    def met(self) -> bool:
        return self.measured <= self.limit if self.lower_is_better else self.measured >= self.limit

    def as_dict(self) -> dict[str, Any]:
        sign = "<=" if self.lower_is_better else ">="
        return {
            "name": self.name,
            "target": f"{sign} {self.limit:g} {self.unit}",
            "measured": self.measured,
            "unit": self.unit,
            "met": self.met,
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi(query: str, timeout: float = 10) -> list[str] | None:
    """One line per GPU of `nvidia-smi --query-gpu=<query>` (CSV, no header, no units); None when
    there is no nvidia-smi or it fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines() or None


def _gpu() -> str | None:
    rows = nvidia_smi("name,memory.total")
    return f"{rows[0]} MiB" if rows else None


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": _cpu_model(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib,
        "gpu": _gpu(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def colour_weight(card: Any) -> float:
    """The colour weight (`models.colour`) a benchmark's memory answers with: the version's, or, for
    a version without a memory (the benchmarks' untrained default model), the weight training writes,
    so that the benchmark pays for the colours as a trained version's answers do."""
    from catalog.settings_sections import MemorySettings

    return card.open_set.colour if card.open_set is not None else MemorySettings().colour


def gate_columns(card: Any) -> tuple[int, int] | None:
    """The gate (`models.openset`) a benchmark's memory answers with: the version's, or, for the
    untrained default model (lite0, exported as training does), the columns past its last features."""
    from catalog.settings_sections import MemorySettings

    if card.open_set is not None:
        return card.open_set.gate
    last = 1280  # efficientnet_lite0's last features; the rest of a wider embedding is its middle
    width = card.embedding_dim or last
    return (last, width) if MemorySettings().middle > 0 and width > last else None


def results_dir(args: argparse.Namespace) -> Path:
    if args.results is not None:
        return Path(args.results)
    return RESULTS_DIR / "quick" if args.quick else RESULTS_DIR


def emit(name: str, payload: dict[str, Any], args: argparse.Namespace, started: float) -> Path:
    """Print the report as JSON and write it to the results folder; returns the file's path."""
    report = {
        "benchmark": name,
        "quick": bool(args.quick),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "config": {key: str(value) for key, value in sorted(vars(args).items())},
        **payload,
    }
    text = json.dumps(report, indent=2, default=str)
    print(text, flush=True)
    folder = results_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(text + "\n")
    temporary.replace(path)
    return path
