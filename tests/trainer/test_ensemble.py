"""Several training runs as one net (`NAMAE_TRAIN__MEMBERS`): the ensemble's arithmetic, its graph,
and a run of two members end to end through `train_run`, the registry and the classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from catalog.settings_sections import MemorySettings
from media.decode import decode_image
from models import preprocess
from models.classifier import Classifier
from models.registry import Registry
from models.runtime import open_session
from namae.cli import app
from tests.models.tiny import random_images
from tests.trainer.conftest import tiny_settings
from trainer import backbones
from trainer.checkpoints import BEST, LAST, load_checkpoint
from trainer.ensemble import Ensemble
from trainer.export import check_parity, export_onnx, normalize_batch
from trainer.run import train_run

SIZE = 64
LAST_WIDTH, MIDDLE = 1280, 192  # lite0's head conv and block 11


def member(seed: int, middle: float = 0.25, classes: int = 3) -> backbones.Classifier:
    torch.manual_seed(seed)
    return backbones.build(backbones.LITE0, classes, SIZE, pretrained=False, middle=middle).net.eval()


def batch(count: int, seed: int) -> torch.Tensor:
    return normalize_batch(preprocess.to_batch(random_images(count, seed=seed), SIZE))


def test_a_cosine_between_ensemble_vectors_is_the_members_mean_cosine() -> None:
    first, second = member(1), member(2)
    both = Ensemble([first, second]).eval()
    x = batch(3, seed=4)
    with torch.inference_mode():
        features, vectors = both.features_and_embedding(x)
        own = [m.features_and_embedding(x)[1] for m in (first, second)]
    assert features.shape == (3, 2 * LAST_WIDTH) and vectors.shape == (3, 2 * (LAST_WIDTH + MIDDLE))
    np.testing.assert_allclose(vectors.norm(dim=1).numpy(), 1.0, atol=1e-5)
    mean_cosine = (own[0] @ own[0].T + own[1] @ own[1].T) / 2
    torch.testing.assert_close(vectors @ vectors.T, mean_cosine, atol=1e-5, rtol=0)
    assert not torch.allclose(own[0] @ own[0].T, own[1] @ own[1].T, atol=1e-3)  # the members differ


def test_the_middle_parts_are_one_span_the_gate_leaves_out() -> None:
    first, second = member(1), member(2)
    both = Ensemble([first, second]).eval()
    start, end = backbones.middle_columns(both) or (0, 0)
    assert (start, end) == (2 * LAST_WIDTH, 2 * (LAST_WIDTH + MIDDLE))
    x = batch(2, seed=5)
    with torch.inference_mode():
        _, vectors = both.features_and_embedding(x)
        lasts = [m.features_and_embedding(x)[1][:, :LAST_WIDTH] for m in (first, second)]
    # without the span, the gate's vector is the members' last-feature parts side by side
    torch.testing.assert_close(vectors[:, :start], torch.cat(lasts, dim=1) / 2**0.5)
    assert backbones.middle_columns(Ensemble([member(1, 0.0), member(2, 0.0)])) is None


def test_the_logits_are_the_members_mean_through_the_head_and_the_graph(tmp_path: Path) -> None:
    first, second = member(1), member(2)
    both = Ensemble([first, second]).eval()
    x = batch(4, seed=6)
    with torch.inference_mode():
        expected = (first(x) + second(x)) / 2
        features, _ = both.features_and_embedding(x)
        torch.testing.assert_close(both.head(features), expected)
        torch.testing.assert_close(both(x), expected)
    path = tmp_path / "model.onnx"
    export_onnx(both, out_path=path, image_size=SIZE)
    images = random_images(4, seed=6)
    logits, embedding = open_session(path).run(
        list(preprocess.OUTPUT_NAMES), {preprocess.INPUT_NAME: preprocess.to_batch(images, SIZE)}
    )
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)
    assert embedding.shape == (4, 2 * (LAST_WIDTH + MIDDLE))
    assert check_parity(both, path, images, SIZE).embedding_max_abs_diff < 1e-4


def test_members_of_different_nets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble([member(1)])
    with pytest.raises(ValueError, match="widths and middle"):
        Ensemble([member(1, 0.25), member(2, 0.0)])


def _net_from(checkpoint: Path, classes: int) -> backbones.Classifier:
    net = backbones.build(
        backbones.LITE0, classes, SIZE, pretrained=False, middle=MemorySettings().middle
    ).net
    net.load_state_dict(load_checkpoint(checkpoint)["model"])
    return net.eval()


def test_a_run_of_two_members_registers_one_graph_that_answers_as_their_mean(
    tmp_path: Path, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> None:
    folder, names = three_characters
    settings = tiny_settings(
        tmp_path / "data", cascade_path, backbone="efficientnet_lite0", image_size=SIZE, members=2
    )
    updates: list[str] = []
    result = train_run(
        settings, None, from_folder=folder, progress=False, on_progress=lambda _f, m: updates.append(m)
    )
    assert result.version is not None and result.metrics["members"] == 2
    # member 1 is the run as always (its checkpoints in the run folder); member 2 has its own seed
    first_path, second_path = result.run_dir / BEST, result.run_dir / "member-2" / BEST
    assert load_checkpoint(second_path)["member"] == 2
    first, second = _net_from(first_path, len(names)), _net_from(second_path, len(names))
    assert not torch.equal(first.head.weight, second.head.weight)
    assert any(m.startswith("member 2/2, epoch 1/1") for m in updates)
    report = json.loads(result.report_path.read_text())
    assert len(report["member_histories"]) == 1 and report["member_histories"][0]["best_epoch"] == 0

    registry = Registry.from_settings(settings, None)
    card = registry.card(result.version)
    assert card.extra["members"] == 2
    assert card.embedding_dim == 2 * (LAST_WIDTH + MIDDLE)
    assert card.open_set is not None and card.open_set.gate == (2 * LAST_WIDTH, 2 * (LAST_WIDTH + MIDDLE))
    classifier = Classifier.load(registry.version_dir(result.version), int8=False)
    files = sorted((folder / names[0]).glob("*.jpg"))[:4]
    images = [decode_image(p.read_bytes(), settings.images).rgb for p in files]
    probabilities, _, largest = classifier.infer(images)
    with torch.inference_mode():
        x = normalize_batch(preprocess.to_batch(images, SIZE))
        mean_logits = ((first(x) + second(x)) / 2).numpy()
    np.testing.assert_allclose(largest, mean_logits.max(1), atol=1e-3)
    np.testing.assert_array_equal(probabilities.argmax(1), mean_logits.argmax(1))
    listed = CliRunner().invoke(
        app, ["models", "list"], env={"NAMAE_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    )
    assert listed.exit_code == 0 and "efficientnet_lite0 x 2" in listed.output


def test_member_one_is_the_run_of_one_and_a_resumed_run_continues_every_member(
    tmp_path: Path, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> None:
    folder, _ = three_characters
    runs = {}
    for count in (1, 2):
        settings = tiny_settings(tmp_path / f"data{count}", cascade_path, image_size=32, members=count)
        runs[count] = (
            settings,
            train_run(settings, None, from_folder=folder, progress=False, register=False),
        )
    alone, paired = (load_checkpoint(runs[n][1].run_dir / BEST)["model"] for n in (1, 2))
    assert alone.keys() == paired.keys() and all(torch.equal(alone[k], paired[k]) for k in alone)
    assert not (runs[1][1].run_dir / "member-2").exists()

    settings, first = runs[2]
    resumed = train_run(settings, None, resume=first.run_dir / LAST, epochs=2, progress=False, register=False)
    assert resumed.run_dir == first.run_dir
    for folder_of_member in (first.run_dir, first.run_dir / "member-2"):
        assert load_checkpoint(folder_of_member / LAST)["epoch"] == 1  # the second epoch, not a fresh first
    assert (first.run_dir / "train.log").read_text().count("resuming at epoch 2 of 2") == 2


def test_a_member_count_out_of_range_is_one_line_and_nothing_is_trained(tmp_path: Path) -> None:
    env = {"NAMAE_DATA_DIR": str(tmp_path / "data"), "NAMAE_CONFIG": str(tmp_path / "absent.toml")}
    folder = tmp_path / "faces"
    folder.mkdir()
    for count in ("0", "5"):
        result = CliRunner().invoke(app, ["train", "--from-folder", str(folder), "--members", count], env=env)
        assert result.exit_code == 1
        [line] = result.output.strip().splitlines()
        assert line.startswith(f"error: invalid training settings: members={count}:")
    assert not (tmp_path / "data" / "runs").exists() and not (tmp_path / "data" / "models").exists()
