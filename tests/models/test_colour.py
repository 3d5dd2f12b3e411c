"""The face's colours beside the network's embedding: the histogram, the joined vector, and the
classifier and the version check using the card's weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import colour, preprocess
from models.classifier import Classifier
from models.errors import ModelLoadError
from models.memory import CharacterMemory, MemoryEntry
from models.openset import OpenSetThresholds
from models.registry import Registry
from models.versions import validate_folder
from tests.models.helpers import IMAGE_SIZE, LABELS, random_images, stage_version

GRAPH_WIDTH = 16  # the tiny net's embedding


def _face(hair: tuple[int, int, int], brighter: int = 0) -> np.ndarray:
    """A drawn head: hair over the top half, skin and two eyes below, on white."""
    img = np.full((96, 96, 3), 255, dtype=np.uint8)
    img[8:48, 12:84] = hair
    img[48:88, 24:72] = (250, 220, 200)
    img[60:68, 32:40] = img[60:68, 56:64] = (40, 40, 120)
    return np.clip(img.astype(np.int16) + brighter, 0, 255).astype(np.uint8)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_the_histogram_tells_hair_colours_apart_and_not_lighting() -> None:
    red, blue = colour.histogram(_face((200, 30, 40))), colour.histogram(_face((40, 60, 200)))
    assert red.shape == (colour.BINS,) and np.linalg.norm(red) == pytest.approx(1.0, abs=1e-6)
    lighter = colour.histogram(_face((200, 30, 40), brighter=12))
    assert _cos(red, lighter) > 0.9
    assert _cos(red, blue) < _cos(red, lighter) - 0.2


def test_grey_pixels_count_by_brightness_alone() -> None:
    white = colour.histogram(np.full((40, 40, 3), 250, dtype=np.uint8))
    black = colour.histogram(np.full((40, 40, 3), 10, dtype=np.uint8))
    coloured = colour.HUES * colour.SATURATIONS * colour.VALUES
    for grey in (white, black):
        assert not grey[:coloured].any() and grey[coloured:].sum() > 0
    assert _cos(white, black) == 0.0


def test_weight_zero_leaves_the_embedding_as_it_is() -> None:
    e = np.eye(3, 8, dtype=np.float32)
    assert colour.with_colour(e, [_face((0, 0, 0))] * 3, 0.0) is e
    assert colour.width(8, 0.0) == 8 and colour.width(8, 0.25) == 8 + colour.BINS


def test_a_cosine_of_joined_vectors_weighs_colours_by_the_weight() -> None:
    rng = np.random.default_rng(5)
    e = rng.normal(size=(2, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    pictures = [_face((200, 30, 40)), _face((40, 60, 200))]
    h = [colour.histogram(p) for p in pictures]
    weight = 0.25
    joined = colour.with_colour(e, pictures, weight)
    assert joined.shape == (2, 8 + colour.BINS)
    assert np.linalg.norm(joined, axis=1) == pytest.approx([1.0, 1.0], abs=1e-6)
    expected = (_cos(e[0], e[1]) + weight * _cos(h[0], h[1])) / (1 + weight)
    assert _cos(joined[0], joined[1]) == pytest.approx(expected, abs=1e-5)
    assert colour.with_colour(e[:0], [], weight).shape == (0, 8 + colour.BINS)


def _thresholds(weight: float) -> OpenSetThresholds:
    return OpenSetThresholds(sharpness=20.0, name=0.6, pair=0.9, known=0.2, not_character=0.05, colour=weight)


def _memory(width: int) -> CharacterMemory:
    rng = np.random.default_rng(0)
    memory = CharacterMemory(width)
    memory.add(
        MemoryEntry(f"{label}:{i}", label, "test", rng.normal(size=width).astype(np.float32))
        for label in LABELS
        for i in range(3)
    )
    return memory


def test_the_classifier_joins_colours_when_the_card_weighs_them(tmp_path: Path, tiny_onnx: Path) -> None:
    registry = Registry(tmp_path / "models")
    wide = GRAPH_WIDTH + colour.BINS
    _, plain_dir = stage_version(
        registry, tiny_onnx, f1=0.5, open_set=_thresholds(0.0), memory=_memory(GRAPH_WIDTH)
    )
    _, colour_dir = stage_version(
        registry, tiny_onnx, f1=0.5, open_set=_thresholds(0.25), memory=_memory(wide)
    )
    plain, coloured = Classifier.load(plain_dir), Classifier.load(colour_dir)
    assert (plain.embedding_dim, coloured.embedding_dim) == (GRAPH_WIDTH, wide)
    images = random_images(5, seed=2)
    probabilities, graph, largest = plain.infer(images)
    same_probabilities, joined, same_largest = coloured.infer(images)
    np.testing.assert_allclose(same_probabilities, probabilities)
    np.testing.assert_allclose(same_largest, largest)
    # the colours of what the network saw: the prepared pictures, not the uploads as they came
    expected = colour.with_colour(graph, preprocess.to_batch(images, IMAGE_SIZE), 0.25)
    np.testing.assert_allclose(joined, expected, atol=1e-6)
    assert coloured.infer([])[1].shape == (0, wide)
    validate_folder(colour_dir)


def test_a_version_whose_memory_lacks_the_colours_is_refused(tmp_path: Path, tiny_onnx: Path) -> None:
    registry = Registry(tmp_path / "models")
    refused = f"holds {GRAPH_WIDTH}-wide embeddings, the graph and the card give {GRAPH_WIDTH + colour.BINS}"
    _, staging = stage_version(
        registry, tiny_onnx, f1=0.5, open_set=_thresholds(0.25), memory=_memory(GRAPH_WIDTH), register=False
    )
    with pytest.raises(ModelLoadError, match=refused):
        validate_folder(staging)
    with pytest.raises(ModelLoadError, match=refused):
        registry.register(staging)
    assert registry.active_version() is None


def test_a_version_whose_gate_lies_past_the_graph_is_refused(tmp_path: Path, tiny_onnx: Path) -> None:
    registry = Registry(tmp_path / "models")
    past = _thresholds(0.25).model_copy(update={"gate": (GRAPH_WIDTH, GRAPH_WIDTH + 8)})
    _, staging = stage_version(
        registry, tiny_onnx, f1=0.5, open_set=past, memory=_memory(GRAPH_WIDTH + colour.BINS), register=False
    )
    with pytest.raises(ModelLoadError, match="gate columns .* lie past the graph's"):
        registry.register(staging)
    assert registry.active_version() is None
