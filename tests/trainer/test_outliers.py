"""Outlier exposure (trainer/outliers.py): faces of characters outside the catalog, shown beside each
batch, teach the head to answer strangers as no one in particular; a bad outliers folder is refused
before any training, in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from catalog.settings import Settings
from namae.cli import app
from tests.trainer.conftest import draw_folder
from trainer import augment
from trainer.dataset import PixelLoader, prepared_batches
from trainer.epoch import LoopConfig
from trainer.folder_source import from_folder
from trainer.loop import fit, seed_everything
from trainer.outliers import LowResolution, load_outliers, uniform_loss

CONFIG = LoopConfig(epochs=20, batch_size=8, lr=1e-2, weight_decay=0.01, label_smoothing=0.0, seed=5)


def test_the_uniform_loss_is_lowest_when_the_head_favours_no_one() -> None:
    even = torch.zeros(4, 5)
    sure = torch.tensor([[8.0, 0, 0, 0, 0]] * 4)
    assert float(uniform_loss(even)) == pytest.approx(math.log(5))
    assert float(uniform_loss(sure)) > float(uniform_loss(even)) + 1.0


def test_low_resolution_keeps_the_size_and_loses_the_fine_detail() -> None:
    torch.manual_seed(0)
    stripes = torch.zeros(3, 64, 64, dtype=torch.uint8)
    stripes[:, :, ::2] = 255  # the finest detail an image can hold
    shrunk = LowResolution(low=16, high=24)(stripes)
    assert shrunk.shape == stripes.shape and shrunk.dtype == torch.uint8
    contrast = lambda image: float((image[:, :, 1:].float() - image[:, :, :-1].float()).abs().mean())
    assert contrast(shrunk) < contrast(stripes) / 10


def _answers(net: torch.nn.Module, faces: np.ndarray) -> torch.Tensor:
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(augment.batch_to_input(faces)), dim=1)


def _small_net(classes: int) -> torch.nn.Module:
    # Small enough to train in seconds from scratch on 32 px drawings; the mechanism is the same.
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, classes),
    )


def test_training_beside_outliers_leaves_the_head_unsure_of_them_and_still_sure_of_its_characters(
    tmp_path: Path, settings: Settings, three_characters: tuple[Path, list[str]]
) -> None:
    folder, _ = three_characters
    assembled = from_folder(folder, settings, 32, detect_faces=False)
    items, labels = assembled.items, assembled.labels
    others = tmp_path / "others"
    draw_folder(others, {index: 6 for index in range(3, 9)}, seed=3)  # six characters not in the set
    outliers = load_outliers(others, settings, 32, limit=1000)
    assert len(outliers) == 36
    loader = PixelLoader(settings, 32)
    known = np.concatenate(list(prepared_batches(items, loader, 64)))
    truth = torch.tensor([labels.index(item.label) for item in items])

    def trained(shown: list[np.ndarray] | None, name: str) -> torch.nn.Module:
        seed_everything(5)
        net = _small_net(len(labels))
        (tmp_path / name).mkdir()
        fit(
            net,
            train_items=items,
            val_items=items[:6],
            labels=labels,
            loader=loader,
            transform=augment.train_transform(32),
            config=CONFIG,
            device=torch.device("cpu"),
            run_dir=tmp_path / name,
            meta={"labels": labels},
            progress=False,
            outliers=shown,
        )
        return net

    plain, exposed = trained(None, "plain"), trained(outliers, "exposed")
    sure_plain = float(_answers(plain, np.stack(outliers)).max(dim=1).values.mean())
    sure_exposed = float(_answers(exposed, np.stack(outliers)).max(dim=1).values.mean())
    assert sure_exposed < sure_plain - 0.15  # plain training names them as confidently as anyone
    accuracy = lambda net: float((_answers(net, known).argmax(dim=1) == truth).float().mean())
    assert accuracy(exposed) >= accuracy(plain) - 0.05


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "nowhere", "not a folder"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "no image files"),
    ],
    ids=["missing", "no-images"],
)
def test_a_bad_outliers_folder_is_one_line_and_trains_nothing(
    tmp_path: Path, three_characters: tuple[Path, list[str]], cascade_path: Path, make, message: str
) -> None:
    folder, _ = three_characters
    outliers = make(tmp_path)
    data = tmp_path / "data"
    env = {
        "NAMAE_DATA_DIR": str(data),
        "NAMAE_CONFIG": str(tmp_path / "absent.toml"),
        "NAMAE_FACES__CASCADE_PATH": str(cascade_path),
        "NAMAE_TRAIN__BACKBONE": "mobilenet_v3_small",
        "NAMAE_TRAIN__IMAGE_SIZE": "32",
        "NAMAE_TRAIN__EPOCHS": "1",
        "NAMAE_TRAIN__MIN_IMAGES_PER_CLASS": "4",
        "NAMAE_TRAIN__OUTLIERS": str(outliers),
    }
    result = CliRunner().invoke(app, ["train", "--from-folder", str(folder), "--no-progress"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: outliers {outliers}: {message}"
    assert not list(data.rglob("*.onnx"))  # nothing exported, nothing registered
