"""bench.openset without the dev set: it skips with its reason; the split follows the csv files;
the known characters' loss counts from the fewest faces a character is named from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import check_report
from bench.harness import ROOT
from bench.openset import HELD_OUT, known_f1_loss_points, split, write_split


def test_without_the_dev_set_the_report_says_why_it_skipped(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.openset", "--results", str(tmp_path), "--data", str(tmp_path / "absent")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "openset.json").read_text())
    assert "no dev set" in report["skipped"] and "NAMAE_DEV_SET" in report["skipped"]
    check_report(report)


def test_the_split_holds_out_five_characters_from_both_csv_files(tmp_path: Path) -> None:
    names = [f"char{i:02d}" for i in range(8)]
    rows = {"train": [], "test": []}
    for name in names:
        folder = tmp_path / "face_dataset" / name
        folder.mkdir(parents=True)
        for j in range(3):
            (folder / f"{j}.jpg").write_bytes(b"x")
            rows["train" if j < 2 else "test"].append(f"face_dataset\\{name}\\{j}.jpg,{name}")
    for part, lines in rows.items():
        (tmp_path / f"{part}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    parts = split(tmp_path)
    held = set(parts["new_train"])
    assert len(held) == HELD_OUT and held == set(parts["new_test"])
    assert set(parts["known_train"]) == set(names) - held
    assert all(len(files) == 2 for files in parts["known_train"].values())
    write_split(parts, tmp_path / "split")
    first = min(parts["known_test"])
    link = tmp_path / "split" / "known_test" / first / "2.jpg"
    assert link.is_symlink() and link.resolve() == (tmp_path / "face_dataset" / first / "2.jpg").resolve()


def test_the_known_f1_loss_counts_from_the_fewest_faces_a_character_is_named_from() -> None:
    few = {"1": {"known_macro_f1": 0.93}, "5": {"known_macro_f1": 0.945}, "20": {"known_macro_f1": 0.948}}
    assert known_f1_loss_points(0.95, few, min_examples=5) == pytest.approx(0.5)
    assert known_f1_loss_points(0.95, few, min_examples=1) == pytest.approx(2.0)
    # a card asking for more faces than any draw: every draw counts rather than none
    assert known_f1_loss_points(0.95, few, min_examples=50) == pytest.approx(2.0)
    assert known_f1_loss_points(0.90, few, min_examples=5) == 0.0
