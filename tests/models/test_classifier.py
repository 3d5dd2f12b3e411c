"""The ONNX Classifier: calibrated top-k, the unknown decision, per-face answers, frames, hot reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from catalog.faces import FaceDetector
from catalog.settings import FaceSettings
from models import preprocess
from models.classifier import Classifier, ModelWatcher, softmax
from models.errors import ModelLoadError
from models.registry import Registry
from sandbox.characters.render import render_scene
from sandbox.characters.traits import make_characters
from tests.models.tiny import IMAGE_SIZE, LABELS, TinyNet, random_images, stage_version
from trainer.export import normalize_batch


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models", margin=0.01, keep_last=5)


@pytest.fixture(scope="module")
def detector(cascade_path: Path) -> FaceDetector:
    return FaceDetector(cascade_path, FaceSettings())


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """Three characters side by side; the cascade finds all three faces with this seed."""
    image, _ = render_scene(make_characters(3, seed=1), np.random.default_rng(0), size=(384, 224))
    return np.asarray(image)


def _torch_probabilities(images: list[np.ndarray], temperature: float) -> np.ndarray:
    with torch.inference_mode():
        logits = TinyNet(seed=0)(normalize_batch(preprocess.to_batch(images, IMAGE_SIZE))).numpy()
    return softmax(logits, temperature)


def test_loads_with_an_explicit_provider(registry: Registry, tiny_onnx: Path) -> None:
    version, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder, providers=["CPUExecutionProvider"], intra_op_threads=1)
    assert (classifier.version, classifier.labels, classifier.image_size) == (version, LABELS, IMAGE_SIZE)
    assert classifier.provider == "CPUExecutionProvider"
    assert classifier.embedding_dim == 16
    with pytest.raises(ModelLoadError, match="not available"):
        Classifier.load(folder, providers=["NoSuchExecutionProvider"])


def test_top_k_is_the_calibrated_softmax_of_the_trained_net(registry: Registry, tiny_onnx: Path) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5, temperature=1.7)
    classifier = Classifier.load(folder, batch_size=4)  # 11 images: three chunks
    images = random_images(11, seed=3)
    expected = _torch_probabilities(images, temperature=1.7)
    answers = classifier.predict_batch(images, top_k=3)
    assert len(answers) == 11
    for row, candidates in zip(expected, answers, strict=True):
        assert len(candidates) == 3
        probabilities = [c.probability for c in candidates]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1.0 + 1e-9
        assert candidates[0].label == LABELS[int(row.argmax())]
        for candidate in candidates:
            assert candidate.probability == pytest.approx(row[LABELS.index(candidate.label)], abs=1e-5)
    assert classifier.predict_batch([]) == []
    # top_k larger than the label count gives every label once, summing to one.
    [everything] = classifier.predict_batch(images[:1], top_k=10)
    assert sorted(c.label for c in everything) == sorted(LABELS)
    assert sum(c.probability for c in everything) == pytest.approx(1.0)


def test_unknown_below_threshold(registry: Registry, tiny_onnx: Path) -> None:
    # A huge temperature flattens the distribution: every label near 1/4.
    _, flat = stage_version(registry, tiny_onnx, f1=0.5, temperature=1000.0, thresholds=0.5)
    image = random_images(1, seed=5)[0]
    classifier = Classifier.load(flat)
    [answer] = classifier.classify_image(image)
    assert answer.box is None
    assert answer.candidates[0].probability == pytest.approx(0.25, abs=0.01)
    assert answer.unknown
    [answer] = classifier.classify_image(image, threshold=0.2)
    assert not answer.unknown
    # A per-class threshold applies to the top label; others fall back to the global one.
    top = answer.candidates[0].label
    _, per_class = stage_version(
        registry, tiny_onnx, f1=0.5, temperature=1000.0, thresholds={"global": 0.9, "per_class": {top: 0.1}}
    )
    [answer] = Classifier.load(per_class).classify_image(image)
    assert answer.candidates[0].label == top and not answer.unknown


def test_one_answer_per_face_left_to_right(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector, scene: np.ndarray
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder, detector=detector)
    answers = classifier.classify_image(scene, top_k=3)
    boxes = detector.detect(scene)
    assert len(boxes) == 3
    assert [a.box for a in answers] == boxes
    assert [a.box.x for a in answers] == sorted(a.box.x for a in answers)
    crops = [detector.crop(scene, box) for box in boxes]
    expected = _torch_probabilities(crops, temperature=1.0)
    for answer, row, crop in zip(answers, expected, crops, strict=True):
        assert answer.crop is not None and np.array_equal(answer.crop, crop)  # what the model saw
        assert len(answer.candidates) == 3
        assert sum(c.probability for c in answer.candidates) <= 1.0 + 1e-9
        assert answer.candidates[0].probability == pytest.approx(row.max(), abs=1e-5)
        assert answer.embedding is not None and answer.embedding.shape == (16,)
        assert float(np.linalg.norm(answer.embedding)) == pytest.approx(1.0, abs=1e-5)


def test_no_face_gives_one_whole_image_answer(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder, detector=detector)
    plain = np.full((120, 200, 3), 230, dtype=np.uint8)
    [answer] = classifier.classify_image(plain)
    assert answer.box is None and answer.crop is None
    assert answer.candidates[0].probability == pytest.approx(
        _torch_probabilities([plain], 1.0).max(), abs=1e-5
    )


def test_frames_are_merged_per_face_and_for_the_whole_image(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector, scene: np.ndarray
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder, detector=detector)
    single = classifier.classify_image(scene)
    blank = np.full_like(scene, 200)
    # A frame without faces contributes nothing to the faces found in another frame.
    merged = classifier.classify_image(blank, frames=[scene])
    assert [a.box for a in merged] == [a.box for a in single]
    assert [a.candidates for a in merged] == [a.candidates for a in single]
    # No face in any frame: whole-image probabilities averaged over the frames.
    a, b = random_images(2, seed=9)
    [answer] = classifier.classify_image(a, frames=[b], top_k=4)
    expected = _torch_probabilities([a, b], 1.0).mean(0)
    for candidate in answer.candidates:
        assert candidate.probability == pytest.approx(expected[LABELS.index(candidate.label)], abs=1e-5)


def test_watcher_reloads_only_when_the_active_version_changes(registry: Registry, tiny_onnx: Path) -> None:
    v1, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(v1)
    current = Classifier.from_registry(registry)
    watcher = ModelWatcher(registry, current)
    assert watcher.check() is None
    v2, _ = stage_version(registry, tiny_onnx, f1=0.6)
    assert watcher.check() is None  # a new candidate is not a new active model
    registry.promote(v2)
    reloaded = watcher.check()
    assert reloaded is not None and reloaded.version == v2
    assert watcher.check() is None
    registry.rollback()
    back = watcher.check()
    assert back is not None and back.version == v1


def test_watcher_starts_empty_and_picks_up_the_first_model(registry: Registry, tiny_onnx: Path) -> None:
    watcher = ModelWatcher(registry)
    assert watcher.check() is None
    v1, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(v1)
    first = watcher.check()
    assert first is not None and first.version == v1


def test_load_errors_are_clear(registry: Registry, tiny_onnx: Path, tmp_path: Path) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    copy = tmp_path / "copied-model"
    shutil.copytree(folder, copy)
    assert Classifier.load(copy).labels == LABELS  # a copy outside the registry may have any name
    card = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**card, "labels": LABELS[:3]}))
    with pytest.raises(ModelLoadError, match="4 classes but the card lists 3 labels"):
        Classifier.load(copy)
    (copy / "model.json").write_text(json.dumps({**card, "onnx_sha256": None}))
    (copy / "model.onnx").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="does not load in onnxruntime"):
        Classifier.load(copy)
    (copy / "model.json").unlink()
    with pytest.raises(ModelLoadError, match="has no model.json"):
        Classifier.load(copy)
    with pytest.raises(ModelLoadError, match="does not exist"):
        Classifier.load(tmp_path / "nowhere")
