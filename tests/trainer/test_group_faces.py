"""Training from a folder: of a group picture, the one face the active model names as the folder's
character is kept (for training only); without a model, or when no single face is named so, the
picture is skipped."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from catalog.settings import Settings
from media.boxes import Box
from media.faces import FaceDetector
from models.preprocess import prepare
from sandbox.characters.render import render_scene
from tests.fixtures.bot import characters
from tests.fixtures.model import TINY_IMAGE_SIZE, TinyModel
from trainer.folder_source import from_folder


@pytest.fixture
def group_folder(tmp_path: Path, tiny_model: TinyModel) -> tuple[Path, list[str], np.ndarray, Box]:
    """Folders of the tiny model's characters 2 and 3, each with two portraits it trained on; in
    character 2's, a scene of 2 and 3 (one face is 2) and a scene of 0 and 1 (neither is)."""
    specs = characters()
    names = [spec.slug for spec in specs]
    root = tmp_path / "posts"
    for name in names[2:4]:
        (root / name).mkdir(parents=True)
        for source in sorted((tiny_model.dataset_root / name).glob("*.jpg"))[:2]:
            (root / name / source.name).write_bytes(source.read_bytes())
    scene, placed = render_scene(specs[2:4], np.random.default_rng(3), size=(512, 256))
    scene.convert("RGB").save(root / names[2] / "pair.png")
    others, _ = render_scene(specs[0:2], np.random.default_rng(5), size=(512, 256))
    others.convert("RGB").save(root / names[2] / "others.png")
    truth = Box(*dict(placed)[names[2]])
    return root, names, np.asarray(scene.convert("RGB")), truth


def _settings(data_dir: Path, cascade_path: Path, **train: object) -> Settings:
    train = {"pick_group_faces": True, **train}
    return Settings(data_dir=data_dir, faces={"cascade_path": cascade_path}, train=train, _env_file=None)


def test_the_face_the_active_model_names_as_the_folders_character_is_kept_for_training_only(
    group_folder: tuple[Path, list[str], np.ndarray, Box], tiny_model: TinyModel, cascade_path: Path
) -> None:
    root, names, scene, truth = group_folder
    settings = _settings(tiny_model.data_dir, cascade_path)
    assembled = from_folder(root, settings, TINY_IMAGE_SIZE)

    assert assembled.picked == {tiny_model.version: 1}
    assert assembled.skipped == {"several_faces": 1}  # the scene without the folder's character
    picked = [item for item in assembled.items if item.train_only]
    assert len(picked) == 1 and picked[0].label == names[2]
    assert len(assembled.items) == 5 and sum(item.train_only for item in assembled.items) == 1
    # The face kept is the character's own, cut as every other training face is.
    detector = FaceDetector(cascade_path, settings.faces)
    boxes = detector.detect(scene)
    assert len(boxes) == 2
    own = max(boxes, key=truth.iou)
    assert picked[0].pixels is not None
    assert np.array_equal(
        picked[0].pixels, prepare(detector.crop(scene, own, TINY_IMAGE_SIZE), TINY_IMAGE_SIZE)
    )


@pytest.mark.parametrize("why", ["setting off", "no active model", "unusable model"])
def test_group_pictures_are_skipped_without_a_model_to_choose(
    why: str,
    group_folder: tuple[Path, list[str], np.ndarray, Box],
    tiny_model: TinyModel,
    cascade_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = group_folder[0]
    if why == "setting off":  # the default
        settings = Settings(
            data_dir=tiny_model.data_dir, faces={"cascade_path": cascade_path}, _env_file=None
        )
    elif why == "no active model":
        settings = _settings(tmp_path / "empty", cascade_path)
    else:  # the active version's graph no longer matches its card
        settings = _settings(tmp_path / "broken", cascade_path)
        shutil.copytree(tiny_model.data_dir / "models", settings.registry_dir)
        (settings.registry_dir / "versions" / tiny_model.version / "model.onnx").write_bytes(b"not a graph")
    with caplog.at_level(logging.INFO, logger="trainer.group_faces"):
        assembled = from_folder(root, settings, TINY_IMAGE_SIZE)
    assert assembled.skipped == {"several_faces": 2}
    assert not assembled.picked and not any(item.train_only for item in assembled.items)
    assert len(assembled.items) == 4
    if why == "unusable model":
        assert "the active model is unusable" in caplog.text


def test_a_group_picture_in_both_characters_folders_gives_each_its_own_face(
    group_folder: tuple[Path, list[str], np.ndarray, Box], tiny_model: TinyModel, cascade_path: Path
) -> None:
    root, names, scene, truth = group_folder
    (root / names[3] / "pair.png").write_bytes((root / names[2] / "pair.png").read_bytes())
    settings = _settings(tiny_model.data_dir, cascade_path)
    assembled = from_folder(root, settings, TINY_IMAGE_SIZE)

    assert assembled.picked == {tiny_model.version: 2}
    assert "conflicting_labels" not in assembled.skipped
    picked = {item.label: item for item in assembled.items if item.train_only}
    assert sorted(picked) == sorted(names[2:4])
    assert picked[names[2]].image_sha256 == picked[names[3]].image_sha256
    detector = FaceDetector(cascade_path, settings.faces)
    own = max(detector.detect(scene), key=truth.iou)
    assert np.array_equal(
        picked[names[2]].pixels, prepare(detector.crop(scene, own, TINY_IMAGE_SIZE), TINY_IMAGE_SIZE)
    )
    assert not np.array_equal(picked[names[2]].pixels, picked[names[3]].pixels)
