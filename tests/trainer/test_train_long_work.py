"""What `namae train` says during long work (issue 15, item 9b), watched through a real process whose
output goes to a pipe, as when it runs under a scheduler or into a log file: the pass that reads and
crops the folder shows how far it got, each epoch logs lines while it runs (not one bar when it
ends), and SIGTERM ends it with a line naming the checkpoint and the command that continues it,
status 143, and that command works.

One training process serves the three checks (a torch start-up costs tens of seconds on a busy
machine); the module fixture stops it with SIGTERM once the second epoch has shown a step."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import CASCADE
from tests.trainer.conftest import draw_folder

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 50  # more than it will reach: SIGTERM arrives in epoch 2
PICTURES = 36
DEADLINE_S = 900  # a hung process is killed, and the reads below end, after this long
# Piped, progress is log lines (on stderr, beside the epoch lines, and in the run's train.log).
SAID = r"INFO trainer\.progress: "
STEP = re.compile(SAID + r"epoch (\d+)/(\d+)(?: loss [\d.]+)?: (\d+)/(\d+) \(\d+%\), \d+s$")
READING = re.compile(SAID + rf"reading and cropping {PICTURES} pictures: (\d+)/{PICTURES} \(\d+%\), \d+s$")
EPOCH_LOG = re.compile(r"INFO trainer\.loop: epoch (\d+)/\d+: train loss")
STOPPED = re.compile(
    r"^training stopped by SIGTERM; (\S+) holds its last finished epoch: "
    r"`(?:python -m )?namae train --resume (\S+)` continues it$"
)


@dataclass
class Stopped:
    lines: list[str]
    status: int
    env: dict[str, str]


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NAMAE_DATA_DIR": str(tmp / "data"),
        "NAMAE_CONFIG": str(tmp / "absent.toml"),
        "NAMAE_FACES__CASCADE_PATH": str(CASCADE),
        "NAMAE_TRAIN__BACKBONE": "mobilenet_v3_small",
        "NAMAE_TRAIN__IMAGE_SIZE": "32",
        "NAMAE_TRAIN__EPOCHS": str(EPOCHS),
        "NAMAE_TRAIN__BATCH_SIZE": "2",  # ~10 steps an epoch: enough for lines within the epoch
        "NAMAE_TRAIN__MIN_IMAGES_PER_CLASS": "4",
        "NAMAE_TRAIN__VAL_FRACTION": "0.2",
        "NAMAE_TRAIN__TEST_FRACTION": "0.2",
        "NAMAE_TRAIN__DEVICE": "cpu",
        "NAMAE_TRAIN__SEED": "11",
        "NAMAE_LOG_LEVEL": "INFO",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    """`namae train --from-folder` piped, sent SIGTERM when epoch 2 has shown its first step."""
    tmp = tmp_path_factory.mktemp("long_work")
    draw_folder(tmp / "folder", {0: 12, 1: 12, 2: 12}, size=64)
    env = _env(tmp)
    process = subprocess.Popen(
        [sys.executable, "-m", "namae", "train", "--from-folder", str(tmp / "folder")],
        cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(DEADLINE_S, process.kill)
    watchdog.start()
    lines: list[str] = []
    sent = False
    try:
        assert process.stdout is not None
        for raw in process.stdout:  # each line as the process writes it; ends when it exits
            line = raw.rstrip("\n")
            lines.append(line)
            step = STEP.search(line)
            if step and step[1] == "2" and int(step[3]) >= 1 and not sent:
                process.send_signal(signal.SIGTERM)
                sent = True
        status = process.wait()
    finally:
        watchdog.cancel()
        process.kill()
    assert any(EPOCH_LOG.search(line) for line in lines), "\n".join(lines)
    return Stopped(lines, status, env)


def test_reading_the_folder_shows_progress_before_training(stopped: Stopped) -> None:
    read = [int(m[1]) for m in map(READING.search, stopped.lines) if m]
    assert read[0] == 0 and read[-1] == PICTURES, stopped.lines
    assert any(0 < count < PICTURES for count in read), read  # lines while it reads, not only at the end
    first_step = next(i for i, line in enumerate(stopped.lines) if STEP.search(line))
    last_read = max(i for i, line in enumerate(stopped.lines) if READING.search(line))
    assert last_read < first_step


def test_piped_training_logs_steps_before_the_epoch_ends(stopped: Stopped) -> None:
    epoch_ends = next(i for i, line in enumerate(stopped.lines) if EPOCH_LOG.search(line))
    assert EPOCH_LOG.search(stopped.lines[epoch_ends])[1] == "1"
    steps = [m for m in map(STEP.search, stopped.lines[:epoch_ends]) if m]
    assert steps and all(m[1] == "1" and m[2] == str(EPOCHS) for m in steps), steps
    total = int(steps[0][4])
    assert total >= 5
    within = [int(m[3]) for m in steps if 0 < int(m[3]) < total]
    assert len(within) >= 2, stopped.lines  # several lines during the epoch, each a plain line
    assert int(steps[-1][3]) == total


def test_sigterm_names_the_checkpoint_and_the_command_that_resumes_it(
    stopped: Stopped, tmp_path: Path
) -> None:
    assert stopped.status == 128 + signal.SIGTERM, stopped.lines[-20:]
    said = STOPPED.search(stopped.lines[-1])
    assert said, stopped.lines[-20:]
    checkpoint = Path(said[1])
    assert said[2] == said[1] and checkpoint.name == "last.pt" and checkpoint.is_file()
    assert not any("Traceback" in line for line in stopped.lines)
    finished = int(torch.load(checkpoint, map_location="cpu", weights_only=False)["epoch"])
    assert finished >= 0

    # The command it gives, as given (no --from-folder: the run remembers its folder), one epoch more.
    resumed = subprocess.run(
        [sys.executable, "-m", "namae", "train", *shlex.split(f"--resume {said[2]}"), "--epochs", str(finished + 2), "--no-register"],
        cwd=tmp_path, env=stopped.env, capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at epoch {finished + 2} of {finished + 2}" in resumed.stderr
    assert f"epoch {finished + 2}/{finished + 2}: train loss" in resumed.stderr
    assert f"report: {checkpoint.parent / 'report.json'}" in resumed.stdout
