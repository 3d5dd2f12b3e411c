"""One training command line: `python -m trainer` (torchrun's entry) and `namae train` are the same
command (`trainer.cli.train`), with the same options and the same one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from namae.cli import app

ROOT = Path(__file__).resolve().parents[2]
OPTION = re.compile(r"--[a-z][a-z-]+")


def _python_m_trainer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_both_entries_offer_the_same_options() -> None:
    ours = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    theirs = _python_m_trainer("--help")
    assert ours.exit_code == 0 and theirs.returncode == 0
    options = set(OPTION.findall(ours.output))
    assert options == set(OPTION.findall(theirs.stdout))
    assert {"--from-folder", "--backbone", "--epochs", "--image-size", "--device", "--resume"} <= options
    assert {"--no-register", "--promote", "--no-progress"} <= options
    assert "Usage: python -m trainer" in theirs.stdout


def test_a_bad_folder_is_one_line_and_status_1_from_both(tmp_path: Path) -> None:
    env = {"NAMAE_DATA_DIR": str(tmp_path / "data"), "NAMAE_CONFIG": str(tmp_path / "absent.toml")}
    missing = str(tmp_path / "nowhere")
    theirs = _python_m_trainer("--from-folder", missing, env=env)
    ours = CliRunner().invoke(app, ["train", "--from-folder", missing], env=env)
    for status, err in ((theirs.returncode, theirs.stderr), (ours.exit_code, ours.output)):
        assert status == 1
        assert err.strip() == f"error: --from-folder {missing}: not a folder"


def test_an_unreachable_face_cascade_is_one_line_and_status_1_from_both(tmp_path: Path) -> None:
    """An offline machine without the cascade: the download's failure and where a copy can go, no
    traceback, nothing trained or registered."""
    folder = tmp_path / "faces"
    for character in ("alice", "bob"):
        (folder / character).mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / character / "a.png")
    env = {
        "NAMAE_DATA_DIR": str(tmp_path / "data"),
        "NAMAE_CONFIG": str(tmp_path / "absent.toml"),
        "NAMAE_FACES__CASCADE_URL": "http://127.0.0.1:9/unreachable",
        "NAMAE_DOWNLOAD__RETRIES": "0",
    }
    theirs = _python_m_trainer("--from-folder", str(folder), env=env)
    ours = CliRunner().invoke(app, ["train", "--from-folder", str(folder)], env=env)
    for status, err in ((theirs.returncode, theirs.stderr), (ours.exit_code, ours.output)):
        assert status == 1
        [line] = [line for line in err.splitlines() if line.startswith("error:")]
        assert line.startswith("error: Downloading http://127.0.0.1:9/unreachable failed")
        assert "NAMAE_FACES__CASCADE_PATH" in line
        assert "Traceback" not in err
    assert not (tmp_path / "data" / "models").exists()
