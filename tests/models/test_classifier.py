"""The ONNX Classifier: calibrated top-k, the unknown decision, per-face answers, frames, hot reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from catalog.settings_sections import StoreSettings
from models.classifier import Classifier, ModelWatcher
from models.errors import ModelLoadError
from models.registry import Registry
from tests.models.helpers import make_registry
from tests.models.tiny import IMAGE_SIZE, LABELS, random_images, stage_version, torch_probabilities


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models", margin=0.01, keep_last=5)


@pytest.fixture
def any_registry(tmp_path: Path, store_settings: StoreSettings) -> Registry:
    """On each backend: hot reload must work without a shared filesystem."""
    return make_registry(tmp_path / "models", store_settings, margin=0.01, keep_last=5)


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
    expected = torch_probabilities(images, temperature=1.7)
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


def test_watcher_reloads_only_when_the_active_version_changes(
    any_registry: Registry, tiny_onnx: Path
) -> None:
    registry = any_registry
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


def test_watcher_starts_empty_and_picks_up_the_first_model(any_registry: Registry, tiny_onnx: Path) -> None:
    registry = any_registry
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
