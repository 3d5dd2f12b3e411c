"""The DDP path: `python -m trainer` under torchrun with two gloo processes on the CPU trains,
writes one run folder and registers exactly one version."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from models.registry import Registry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_train_and_export_once(
    tmp_path: Path, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> None:
    folder, names = three_characters
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # two ranks share the cores
        "NAMAE_DATA_DIR": str(data_dir),
        "NAMAE_FACES__CASCADE_PATH": str(cascade_path),
        "NAMAE_TRAIN__BACKBONE": "mobilenet_v3_small",
        "NAMAE_TRAIN__EPOCHS": "2",
        "NAMAE_TRAIN__IMAGE_SIZE": "32",
        "NAMAE_TRAIN__BATCH_SIZE": "4",
        "NAMAE_TRAIN__MIN_IMAGES_PER_CLASS": "4",
        "NAMAE_TRAIN__DEVICE": "cpu",
        "NAMAE_CONFIG": str(tmp_path / "absent.toml"),
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "trainer", "--from-folder", str(folder), "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "[rank 0] INFO trainer.loop: epoch 2/2" in done.stderr
    assert "[rank 1] INFO" not in done.stderr  # rank 0 alone logs

    versions = [p.name for p in (data_dir / "models" / "versions").iterdir()]
    assert len(versions) == 1
    runs = list((data_dir / "runs").iterdir())
    assert len(runs) == 1
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["world_size"] == 2 and report["version"] == versions[0]
    assert sorted(report["labels"]) == sorted(names)
    # Each rank saw half of each epoch: the DistributedSampler sharded the training set.
    train_images = report["dataset"]["train"]
    assert 0 < report["history"]["epochs"][0]["train_samples"] <= (train_images + 1) // 2
    assert json.loads((runs[0] / "config.json").read_text())["world_size"] == 2
    card = Registry(data_dir / "models").card(versions[0])
    assert card.metrics["test_macro_f1"] == report["metrics"]["test_macro_f1"]
    assert f"registered candidate {versions[0]}" in done.stdout
