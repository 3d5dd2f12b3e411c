"""The benchmark harness and runner: the statistics they report and the reports they accept."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BadReport, check_report
from bench.harness import (
    Target,
    emit,
    interleave,
    machine,
    nvidia_smi,
    parser,
    percentile,
    ratio,
    summary,
)


def test_percentile_is_nearest_rank_of_measured_values() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_an_odd_count_is_the_middle_value() -> None:
    # Rounding half to even once made this 2.0: the rank is ceil(q/100 * n), not round().
    assert percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50) == 3.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 90) == 7.0  # rank ceil(6.3) = 7
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 0) == 1.0


def test_summary_reports_median_and_tail() -> None:
    result = summary([10.0, 1.0, 3.0, 2.0])
    assert result == {"n": 4, "median_ms": 2.5, "p95_ms": 10.0, "p99_ms": 10.0, "min_ms": 1.0}
    with pytest.raises(ValueError, match="no samples"):
        summary([])


def test_interleave_runs_contenders_round_robin() -> None:
    calls: list[str] = []
    samples = interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3}
    assert all(value >= 0 for values in samples.values() for value in values)


def test_ratio_and_targets() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) == math.inf
    assert Target("latency", 30, 29.9, "ms").met
    assert not Target("latency", 30, 30.1, "ms").met
    assert Target("speed", 0.95, 1.2, "x", lower_is_better=False).met
    assert Target("speed", 0.95, 0.9, "x", lower_is_better=False).as_dict() == {
        "name": "speed",
        "target": ">= 0.95 x",
        "measured": 0.9,
        "unit": "x",
        "met": False,
    }


def test_emit_prints_and_writes_the_same_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser("doc").parse_args(["--quick", "--results", str(tmp_path)])
    path = emit("example", {"results": {"x": 1}}, args, started=0.0)
    printed = json.loads(capsys.readouterr().out)
    assert path == tmp_path / "example.json"
    assert json.loads(path.read_text()) == printed
    assert printed["benchmark"] == "example" and printed["quick"] is True
    assert printed["results"] == {"x": 1}
    assert {"cpu", "cpus", "python"} <= set(printed["machine"])
    assert not list(tmp_path.glob("*.tmp"))


def _report(**changes: object) -> dict[str, object]:
    report: dict[str, object] = {
        "benchmark": "x",
        "machine": {},
        "baseline": "b",
        "candidate": "c",
        "results": {},
        "ratios": {"c_over_b": 1.5},
        "targets": [Target("t", 1, 0.5, "ms").as_dict()],
    }
    report.update(changes)
    return report


def test_runner_accepts_a_report_with_a_baseline_comparison() -> None:
    check_report(_report())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"baseline": None}, None),
        ({"ratios": {}}, "no ratios"),
        ({"ratios": {"r": 0}}, "not a finite positive"),
        ({"ratios": {"r": math.inf}}, "not a finite positive"),
        ({"ratios": {"r": "fast"}}, "not a finite positive"),
        ({"targets": [{"name": "t"}]}, "lacks"),
    ],
)
def test_runner_refuses_reports_without_a_usable_comparison(changes: dict, message: str | None) -> None:
    report = _report(**changes)
    if changes.get("baseline", "") is None:
        del report["baseline"]
        message = "missing baseline"
    with pytest.raises(BadReport, match=message):
        check_report(report)


def test_runner_refuses_unknown_benchmarks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "unknown benchmarks: nope" in done.stderr


def test_gpu_is_read_from_nvidia_smi_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        '#!/bin/sh\ncase "$1" in\n  *utilization*) echo 37 ;;\n  *) echo "NVIDIA Test, 1024" ;;\nesac\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert nvidia_smi("utilization.gpu") == ["37"]
    assert machine()["gpu"] == "NVIDIA Test, 1024 MiB"
    fake.write_text("#!/bin/sh\nexit 9\n")  # a driver that fails: no GPU figure, no crash
    assert nvidia_smi("utilization.gpu") is None and machine()["gpu"] is None
