"""The training loop: resuming continues where a run stopped, broken checkpoints are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from catalog.settings import Settings
from tests.trainer.conftest import tiny_settings
from trainer import TrainingError, augment, backbones
from trainer.checkpoints import LAST, load_checkpoint
from trainer.dataset import PixelLoader
from trainer.epoch import LoopConfig, class_weights
from trainer.folder_source import from_folder
from trainer.loop import fit, seed_everything
from trainer.run import train_run

CONFIG = LoopConfig(epochs=2, batch_size=8, lr=2e-3, weight_decay=0.01, label_smoothing=0.1, seed=5)


def _fit(settings: Settings, folder: Path, run_dir: Path, **kw: object) -> tuple[torch.nn.Module, object]:
    assembled = from_folder(folder, settings, 32, detect_faces=False)
    items, labels = assembled.items, assembled.labels
    seed_everything(5)
    net = backbones.build("mobilenet_v3_small", len(labels), 32, pretrained=False).net
    run_dir.mkdir(parents=True, exist_ok=True)
    history = fit(
        net,
        train_items=items[::2],
        val_items=items[1::2],
        labels=labels,
        loader=PixelLoader(settings, 32),
        transform=augment.train_transform(32),
        config=CONFIG,
        device=torch.device("cpu"),
        run_dir=run_dir,
        meta={"labels": labels, "backbone": "mobilenet_v3_small", "image_size": 32},
        progress=False,
        **kw,
    )
    return net, history


def test_a_resumed_run_continues_to_the_same_weights(
    tmp_path: Path, settings: Settings, three_characters: tuple[Path, list[str]]
) -> None:
    folder, _ = three_characters
    _, straight = _fit(settings, folder, tmp_path / "straight")

    _, stopped = _fit(settings, folder, tmp_path / "interrupted", time_budget_s=0.0)
    assert [e.epoch for e in stopped.epochs] == [0] and stopped.stopped_early
    checkpoint = load_checkpoint(tmp_path / "interrupted" / LAST)
    assert checkpoint["epoch"] == 0
    _, resumed = _fit(settings, folder, tmp_path / "interrupted", resume=checkpoint)

    assert [e.epoch for e in resumed.epochs] == [0, 1]
    assert resumed.epochs[1].train_loss == pytest.approx(straight.epochs[1].train_loss, rel=1e-4)
    a = load_checkpoint(tmp_path / "straight" / LAST)["model"]
    b = load_checkpoint(tmp_path / "interrupted" / LAST)["model"]
    for name, tensor in a.items():
        assert torch.allclose(tensor.float(), b[name].float(), atol=1e-5), name


def test_corrupt_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    with pytest.raises(TrainingError, match="corrupt or not a namae checkpoint"):
        load_checkpoint(garbage)
    real = tmp_path / "real.pt"
    torch.save({"format": 1, "model": {"w": torch.ones(1000)}, "epoch": 0}, real)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(real.read_bytes()[:700])
    with pytest.raises(TrainingError, match="corrupt or not a namae checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(3)}, foreign)
    with pytest.raises(TrainingError, match="not a namae training checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(TrainingError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_train_run_with_a_corrupt_or_mismatched_checkpoint_stops_before_training(
    tmp_path: Path, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> None:
    folder, _ = three_characters
    settings = tiny_settings(tmp_path / "data", cascade_path)
    broken = tmp_path / "run" / LAST
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(TrainingError, match="corrupt"):
        train_run(settings, None, from_folder=folder, resume=broken, progress=False)
    other = tmp_path / "other" / LAST
    other.parent.mkdir()
    torch.save(
        {"format": 1, "model": {}, "labels": ["x", "y"], "backbone": "resnet18", "image_size": 32}, other
    )
    with pytest.raises(TrainingError, match="cannot resume this run: classes differ; backbone resnet18"):
        train_run(settings, None, from_folder=folder, resume=other, progress=False)
    assert not any(settings.runs_dir.glob("*/report.json"))
    versions = settings.registry_dir / "versions"
    assert not versions.exists() or not any(versions.iterdir())


def test_a_character_with_a_handful_of_pictures_weighs_less_than_a_large_one() -> None:
    targets = [0] * 500 + [1] * 400 + [2] * 6
    weights = class_weights(targets, 3)
    assert weights[targets].mean().item() == pytest.approx(1.0)  # the loss keeps its scale
    # classes of comparable size count the same ...
    assert (500 * weights[0]).item() == pytest.approx((400 * weights[1]).item())
    # ... a handful counts as a quarter of the median class (400), not as a whole class
    assert (weights[2] / weights[1]).item() == pytest.approx(400 / (0.25 * 400))
    assert 6 * weights[2] < 400 * weights[1]
    assert torch.equal(class_weights([0, 0, 1, 1, 2, 2], 3), torch.ones(3))
    # a class with no pictures in this split does not move the median
    assert torch.allclose(class_weights([0] * 8 + [1] * 8, 3)[:2], torch.ones(2))
