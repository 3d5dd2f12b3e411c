"""`train_run` end to end: the run folder (report, plots, resolved config), calibration, the frozen
test set across runs, and the registered model answering like the trainer's evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine

from catalog.settings import ImageLimits
from catalog.settings_sections import MemorySettings
from media.decode import decode_image
from models import colour
from models.classifier import Classifier
from models.registry import Registry
from tests.fixtures.model import TinyModel
from tests.trainer.conftest import tiny_settings
from trainer.report import CONFUSION_PNG, CURVES_PNG, MISTAKES_PNG, RELIABILITY_PNG
from trainer.run import train_run
from trainer.run_dataset import frozen_test_key, frozen_test_store


def _run_dir(data_dir: Path) -> Path:
    (run_dir,) = [p for p in (data_dir / "runs").iterdir() if (p / "report.json").is_file()]
    return run_dir


def test_the_run_folder_holds_report_plots_and_resolved_config(tiny_model: TinyModel) -> None:
    run_dir = _run_dir(tiny_model.data_dir)
    for png in (CONFUSION_PNG, CURVES_PNG, MISTAKES_PNG, RELIABILITY_PNG):
        with PILImage.open(run_dir / png) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) >= 300, png
    report = json.loads((run_dir / "report.json").read_text())
    assert report["version"] == tiny_model.version
    test = report["test"]
    assert set(test["per_class"]) == set(tiny_model.labels)
    for row in (*test["per_class"].values(), test["macro"], test["weighted"]):
        assert {"precision", "recall", "f1", "support"} <= set(row)
    assert np.asarray(test["confusion_matrix"]).shape == (len(tiny_model.labels),) * 2
    calibration = report["calibration"]
    assert calibration["val_ece_after"] <= calibration["val_ece_before"]
    assert 0.0 <= calibration["threshold"] <= 1.0 and calibration["temperature"] > 0
    metrics = report["metrics"]
    assert metrics["pretrained"] is True and metrics["backbone"] == "efficientnet_lite0"
    assert metrics["test_macro_f1"] == pytest.approx(test["macro"]["f1"])
    markdown = (run_dir / "report.md").read_text()
    assert "| **macro avg** |" in markdown and "| **weighted avg** |" in markdown and "ECE before" in markdown
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["image_size"] == 64 and config["backbone"]["pretrained"] is True
    assert config["backbone"]["middle"] == MemorySettings().middle > 0  # lite0's middle features too
    assert any("hue=0" in line for line in config["augmentation"])
    assert "epoch 1/" in (run_dir / "train.log").read_text()


def test_the_registered_model_is_active_and_agrees_with_the_report(tiny_model: TinyModel) -> None:
    registry = Registry(tiny_model.registry_root)
    assert registry.active_version() == tiny_model.version
    card = registry.card(tiny_model.version)
    assert card.labels == tiny_model.labels and card.image_size == 64
    assert card.metrics["test_macro_f1"] == pytest.approx(tiny_model.report["metrics"]["test_macro_f1"])
    assert card.temperature == pytest.approx(tiny_model.report["calibration"]["temperature"])
    # the open-set bars weigh the head's largest logit (NAMAE_MEMORY__FAMILIARITY, on by default)
    assert card.open_set is not None and card.open_set.familiarity is not None
    assert card.open_set.familiarity[1] > 0
    classifier = Classifier.load(registry.version_dir(tiny_model.version))
    label = tiny_model.labels[0]
    files = sorted((tiny_model.dataset_root / label).glob("*"))[:8]
    images = [decode_image(p.read_bytes(), ImageLimits()).rgb for p in files]
    probabilities, embeddings, largest = classifier.infer(images)
    assert probabilities.shape == (len(files), len(tiny_model.labels))
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    # the head's largest raw logit: its softmax at the card's temperature is the top probability
    assert largest.shape == (len(files),) and np.isfinite(largest).all()


def test_runs_keep_the_same_frozen_test_set_and_report_progress(
    tmp_path: Path, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> None:
    folder, _ = three_characters
    settings = tiny_settings(tmp_path / "data", cascade_path)
    updates: list[tuple[float, str]] = []
    first = train_run(settings, None, from_folder=folder, progress=False, register=False,
                      on_progress=lambda f, m: updates.append((f, m)))  # fmt: skip
    frozen = json.loads(frozen_test_store(settings).get(frozen_test_key(folder)))
    second = train_run(
        settings, None, from_folder=folder, progress=False, register=False, backbone="resnet18"
    )
    assert first.version is None and not (settings.registry_dir / "versions").exists()
    assert (
        json.loads(frozen_test_store(settings).get(frozen_test_key(folder)))["members"] == frozen["members"]
    )
    assert first.metrics["test_set_fingerprint"] == second.metrics["test_set_fingerprint"]
    reports = [json.loads(r.report_path.read_text()) for r in (first, second)]
    assert reports[0]["dataset"]["test"] == reports[1]["dataset"]["test"] == len(frozen["members"])
    fractions = [f for f, _ in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    assert any("epoch 1/1" in message for _, message in updates)
    assert second.metrics["pretrained"] is False  # resnet18 weights are not cached here
    assert "RANDOM INIT" in (second.run_dir / "report.md").read_text()


def test_train_run_from_the_catalog_keeps_each_post_on_one_side(
    data_dir: Path, cascade_path: Path, sqlite_engine: Engine, three_characters: tuple[Path, list[str]]
) -> None:
    from catalog.db import session_scope
    from catalog.schema import Character, Image, ImageStatus, Label, LabelOrigin, Provenance
    from catalog.store import ImageStore

    folder, names = three_characters
    settings = tiny_settings(data_dir, cascade_path)  # the catalog database lives there too
    store = ImageStore.from_settings(settings)
    post_of: dict[str, str] = {}
    with session_scope(sqlite_engine) as s:
        for c, name in enumerate(names):
            character = Character(name=name.replace("_", " ").title(), slug=name)
            s.add(character)
            s.flush()
            for k, path in enumerate(sorted((folder / name).glob("*.jpg"))):
                sha = store.put(path.read_bytes())
                image = Image(sha256=sha, status=ImageStatus.accepted, stored=True, has_face=False)
                s.add(image)
                s.flush()
                post = f"t3_{c}{k // 2}"  # two images per post
                post_of[sha] = post
                s.add(Provenance(image_id=image.id, post_id=post, url=f"https://i.redd.it/{sha[:8]}.png"))
                s.add(
                    Label(
                        image_id=image.id, character_id=character.id, origin=LabelOrigin.subreddit, weight=0.9
                    )
                )
    result = train_run(settings, sqlite_engine, progress=False, register=False)
    report = json.loads(result.report_path.read_text())
    assert report["dataset"]["source"] == "catalog"
    assert sorted(report["labels"]) == sorted(n.replace("_", " ").title() for n in names)
    frozen = json.loads(frozen_test_store(settings).get(frozen_test_key(None)))
    test_posts = {post_of[sha] for sha in frozen["members"]}
    others = {post for sha, post in post_of.items() if sha not in frozen["members"]}
    assert test_posts and not test_posts & others


def test_the_version_carries_its_character_memory_and_open_set_thresholds(tiny_model: TinyModel) -> None:
    from models.memory import MEMORY_NAME, CharacterMemory

    registry = Registry(tiny_model.registry_root)
    card = registry.card(tiny_model.version)
    assert card.open_set is not None
    th = card.open_set
    assert th.sharpness > 0 and 0 < th.name <= 1 and th.not_character < th.known
    assert th.fitted_on["held_out_faces"] > 0 and th.fitted_on["negatives"] > 0
    memory = CharacterMemory.load(registry.version_dir(tiny_model.version) / MEMORY_NAME)
    # the memory's vectors: the graph's embedding and the faces' colours, as the classifier makes them
    assert th.colour == MemorySettings().colour > 0
    # the graph's embedding: lite0's last and middle features; the bars for "anyone at all?" leave
    # the middle ones out
    assert card.embedding_dim == 1280 + 192 and th.gate == (1280, 1280 + 192)
    assert th.gate_offsets and th.gate_offsets != th.offsets
    # the bars are fitted on two looks (the face and its mirror image), with the second look's margins
    assert th.second_look is not None and 0.0 < th.second_look[0] < 0.5
    assert memory.dim == card.embedding_dim + colour.BINS
    assert Classifier.load(registry.version_dir(tiny_model.version)).embedding_dim == memory.dim
    assert set(memory.characters()) == set(card.labels)
    split = tiny_model.report["dataset"]
    assert len(memory) == split["train"] + split["val"]  # every face but the test split's
    open_set = tiny_model.report["open_set"]
    assert 0.0 <= open_set["test_coverage"] <= 1.0
    assert sum(open_set["test_kinds"].values()) == pytest.approx(1.0)
    assert (
        "## Open-set answers (character memory)" in (_run_dir(tiny_model.data_dir) / "report.md").read_text()
    )
