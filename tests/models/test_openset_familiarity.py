"""Familiarity: the head's largest raw logit in a trained character's evidence for "anyone at all?"
(models.openset), fitted on held-out faces by the trainer (trainer.openset.fit_familiarity)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from models.openset import Kind, OpenSetThresholds, decide, familiarity_bonus
from tests.fixtures.openworld import looks, two_characters, unit
from trainer.openset import fit, fit_familiarity

# A and B trained; the face sits at cosine 0.82 to A, just past "known" (0.8)
FACE = unit(np.array([[0.82, 0.0, 0.572]]))
HEAD = np.array([[0.95, 0.05]])
# a logit of 5 is the held-out faces' mean; each logit unit moves the evidence by 0.05
FAMILIAR = (5.0, 0.05)


def test_a_face_the_head_responds_to_weakly_is_a_stranger_however_close_its_vector() -> None:
    world = two_characters([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], sharpness=20.0, familiarity=FAMILIAR)
    [usual] = world.decide(looks(FACE, HEAD, 5.0))
    [weak] = world.decide(looks(FACE, HEAD, 4.0))  # 0.82 - 0.05 < 0.8
    [strong] = world.decide(looks(FACE, HEAD, 6.0))
    assert (usual.kind, weak.kind, strong.kind) == (Kind.NAME, Kind.STRANGER, Kind.NAME)
    assert weak.evidence == pytest.approx(usual.evidence - 0.05, abs=1e-6)
    assert strong.evidence == pytest.approx(usual.evidence + 0.05, abs=1e-6)


def test_a_card_without_familiarity_answers_as_before() -> None:
    world = two_characters([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], sharpness=20.0)
    for logit in (-10.0, 5.0, 10.0):
        [decision] = world.decide(looks(FACE, HEAD, logit))
        assert decision.kind is Kind.NAME and decision.evidence == pytest.approx(float(FACE[0, 0]), abs=1e-6)


def test_a_character_known_from_examples_keeps_its_evidence() -> None:
    # A trained; N known from five faces, no head column: the head never saw N, so its weak
    # response says nothing about a face of N
    thresholds = OpenSetThresholds(
        sharpness=20.0, name=0.6, pair=0.9, known=0.8, not_character=0.3, familiarity=FAMILIAR
    )
    similarity = np.array([0.2, 0.85], dtype=np.float32)
    head = np.array([1.0, np.nan])
    new = decide(similarity, np.array([200, 5]), thresholds, head=head, familiarity=0.0)
    assert new.kind is Kind.NAME and int(new.order[0]) == 1
    assert new.evidence == pytest.approx(0.85, abs=1e-6)
    # the same similarities with the closer character a trained one: it loses 0.25 of evidence
    trained = decide(similarity[::-1].copy(), np.array([200, 5]), thresholds, head=head, familiarity=0.0)
    assert trained.kind is Kind.STRANGER and trained.evidence == pytest.approx(0.6, abs=1e-6)


def test_the_bonus_is_centred_and_scaled_and_the_card_refuses_a_negative_scale() -> None:
    assert familiarity_bonus(FAMILIAR, np.array([4.0, 5.0, 7.0])) == pytest.approx([-0.05, 0.0, 0.1])
    assert familiarity_bonus(None, np.array([4.0, 7.0])) == pytest.approx([0.0, 0.0])
    assert float(familiarity_bonus(FAMILIAR, None)) == 0.0
    with pytest.raises(pydantic.ValidationError, match="familiarity scale"):
        OpenSetThresholds(
            sharpness=1.0, name=0.5, pair=0.5, known=0.5, not_character=0.1, familiarity=(5.0, -1.0)
        )


def test_the_trainer_fits_the_weight_in_standard_deviations() -> None:
    best = np.array([0.7, 0.8, 0.9, 1.0])
    logits = np.array([3.0, 5.0, 5.0, 7.0])
    centre, scale = fit_familiarity(best, logits, 0.5)
    assert centre == pytest.approx(5.0)
    assert scale == pytest.approx(0.5 * np.std(best) / np.std(logits))
    assert fit_familiarity(best, logits, 0.0) is None  # off
    assert fit_familiarity(best, None, 0.5) is None  # no logits (a card fitted without a head)
    assert fit_familiarity(best, np.full(4, 5.0), 0.5) is None  # nothing to tell faces apart by


def _faces(n: int, seed: int, axis_noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n)
    return unit(np.eye(8)[y] + rng.normal(0.0, axis_noise, (len(y), 8))), y


def test_strangers_the_head_barely_knows_are_named_less_at_the_same_coverage() -> None:
    """Held-out faces and strangers alike in their vectors; the head responds to the strangers
    less. Fitted with familiarity, the bars keep as many held-out faces and name fewer strangers."""
    rng = np.random.default_rng(0)
    memory, memory_y = _faces(40, seed=1, axis_noise=0.35)
    held, held_y = _faces(60, seed=2, axis_noise=0.35)
    held_logits = rng.normal(6.0, 1.0, len(held_y))
    strangers, stranger_y = _faces(60, seed=3, axis_noise=0.55)  # farther, and overlapping
    stranger_logits = rng.normal(4.0, 1.0, len(stranger_y))
    head = np.eye(4)[held_y] * 0.9 + 0.025
    plain = fit(memory, memory_y, held, held_y, 4, held_head=head, held_familiarity=held_logits)
    familiar = fit(
        memory, memory_y, held, held_y, 4, held_head=head, held_familiarity=held_logits, familiarity=0.5
    )
    assert plain.thresholds.familiarity is None and familiar.thresholds.familiarity is not None

    def named(thresholds: OpenSetThresholds, vectors: np.ndarray, logits: np.ndarray, y: np.ndarray) -> float:
        protos = unit(np.stack([memory[memory_y == c].mean(0) for c in range(4)]))
        kinds = [
            decide(
                v @ protos.T, np.full(4, 40), thresholds, head=np.eye(4)[c] * 0.9 + 0.025, familiarity=f
            ).kind
            for v, f, c in zip(vectors, logits, y, strict=True)
        ]
        return float(np.mean([k is Kind.NAME for k in kinds]))

    held_named = (
        named(plain.thresholds, held, held_logits, held_y),
        named(familiar.thresholds, held, held_logits, held_y),
    )
    assert abs(held_named[0] - held_named[1]) <= 0.03
    stranger_named = (
        named(plain.thresholds, strangers, stranger_logits, stranger_y),
        named(familiar.thresholds, strangers, stranger_logits, stranger_y),
    )
    assert stranger_named[1] < stranger_named[0] - 0.05
