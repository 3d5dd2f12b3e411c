"""The gate: the bars for "anyone at all?" read the memory's vector without the net's middle
features, the confidence and the order read all of it (models.openset, trainer.openset.fit)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from models.memory import CharacterMemory
from models.open_world import OpenWorld
from models.openset import Kind, OpenSetThresholds, gated
from tests.fixtures.openworld import looks, two_characters, unit
from trainer.openset import fit

CLASSES, LAST, MIDDLE = 4, 32, 8
GATE = (LAST, LAST + MIDDLE)


def _joined(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit [last, 0.5 * middle] vectors: characters apart in the last part, alike in the middle
    one (what a less specialised block sees), each part unit-length as the exported graph makes them."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(CLASSES), per_class)
    last = unit(np.eye(LAST)[y] + rng.normal(0.0, 0.15, (len(y), LAST)))
    middle = unit(np.ones(MIDDLE) + rng.normal(0.0, 0.3, (len(y), MIDDLE)))
    return unit(np.concatenate([last, 0.5 * middle], axis=1)), y


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    memory, memory_y = _joined(60, seed=1)
    held, held_y = _joined(50, seed=2)
    return {"memory": memory, "memory_y": memory_y, "held": held, "held_y": held_y}


def test_the_bars_are_fitted_without_the_gate_and_the_confidence_with_it(
    faces: dict[str, np.ndarray],
) -> None:
    with_gate = fit(**faces, classes=CLASSES, gate=GATE).thresholds
    whole = fit(**faces, classes=CLASSES).thresholds
    without_columns = fit(
        gated(faces["memory"], GATE), faces["memory_y"], gated(faces["held"], GATE), faces["held_y"], CLASSES
    ).thresholds
    assert with_gate.gate == GATE and whole.gate is None
    # "known" and "not a character": the vectors without the middle columns
    assert with_gate.known == pytest.approx(without_columns.known, abs=1e-5)
    assert with_gate.not_character == pytest.approx(without_columns.not_character, abs=1e-5)
    assert with_gate.gate_offsets == pytest.approx(without_columns.offsets, abs=1e-5)
    # the confidence: the whole vector
    assert with_gate.sharpness == pytest.approx(whole.sharpness)
    assert with_gate.offsets == pytest.approx(whole.offsets)
    # the shared middle part raises every cosine: the two bars differ
    assert whole.known > with_gate.known + 0.05


def _world(gate: tuple[int, int] | None) -> OpenWorld:
    """Two trained characters whose prototypes differ in the last part and share the middle column."""
    return two_characters([1.0, 0.0, 1.0], [0.0, 1.0, 1.0], sharpness=10.0, gate=gate)


def test_a_face_like_everyone_only_through_the_middle_features_is_a_stranger() -> None:
    # as much A as B in the last part; its whole-vector cosine to either (0.85) passes "known" (0.8)
    between = unit(np.array([[0.3, 0.3, 1.0]]))
    even = np.array([[0.5, 0.5]])
    [plain] = _world(None).decide(looks(between, even))
    [with_gate] = _world((2, 3)).decide(looks(between, even))
    assert plain.kind == Kind.PAIR and plain.similarity == pytest.approx(0.846, abs=1e-3)
    assert with_gate.kind == Kind.STRANGER and with_gate.similarity == pytest.approx(0.707, abs=1e-3)


def test_a_face_of_a_character_is_named_with_or_without_the_gate() -> None:
    face = unit(np.array([[1.0, 0.1, 1.0]]))
    for gate in (None, (2, 3)):
        [decision] = _world(gate).decide(looks(face, np.array([[0.9, 0.1]])))
        assert decision.kind == Kind.NAME and decision.candidates[0].label == "A"


def test_gated_rows_keep_their_length() -> None:
    faces = unit(np.array([[3.0, 4.0, 12.0], [1.0, 0.0, 1.0]]))
    mean = faces.mean(0)  # two faces averaged: shorter than either
    out = gated(np.vstack([faces, mean]), (2, 3))
    np.testing.assert_allclose(out[:, 2], 0.0)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0, np.linalg.norm(mean)], rtol=1e-6)
    np.testing.assert_allclose(out[0, :2], [0.6, 0.8], rtol=1e-6)  # the direction of what is left
    assert gated(faces, None) is faces


def test_the_card_keeps_the_gate_and_refuses_an_empty_range() -> None:
    thresholds = OpenSetThresholds(
        sharpness=1.0, name=0.5, pair=0.9, known=0.5, not_character=0.1, gate=GATE, gate_offsets={5: 0.02}
    )
    assert OpenSetThresholds.model_validate_json(thresholds.model_dump_json()) == thresholds
    with pytest.raises(pydantic.ValidationError, match="not a range"):
        OpenSetThresholds(sharpness=1.0, name=0.5, pair=0.9, known=0.5, not_character=0.1, gate=(40, 32))


def test_a_run_whose_net_has_middle_features_writes_their_gate() -> None:
    """`trainer.openset_run.for_run` on lite0 with its middle features (untrained, 64 px: the wiring,
    not the figures): the card's gate is the middle columns, the memory holds the whole vector."""
    import torch

    from catalog.settings_sections import MemorySettings
    from models import colour
    from trainer import backbones
    from trainer.dataset import Item
    from trainer.openset_run import for_run

    torch.manual_seed(0)
    net = backbones.build(backbones.LITE0, 3, 64, pretrained=False, middle=0.25).net.eval()
    rng = np.random.default_rng(3)
    tints = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}

    def items(side: str, count: int) -> list[Item]:
        return [
            Item(
                f"{side}-{label}-{i}",
                f"{side}-{label}-{i}",
                label,
                pixels=np.clip(np.array(tint) + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8),
            )
            for label, tint in tints.items()
            for i in range(count)
        ]

    run = for_run(
        net, labels=list(tints), train_items=items("train", 8), val_items=items("val", 6),
        test_items=items("test", 4), loader=lambda item: item.pixels, device=torch.device("cpu"),
        image_size=64, settings=MemorySettings(middle=0.25), seed=0,
    )  # fmt: skip
    assert run.thresholds.gate == (1280, 1280 + 192) and run.thresholds.gate_offsets
    assert CharacterMemory.from_bytes(run.memory).dim == 1280 + 192 + colour.BINS
    assert sum(run.report["test_kinds"].values()) == pytest.approx(1.0)
