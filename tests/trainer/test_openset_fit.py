"""Fitting the open-set thresholds (trainer.openset.fit) on embeddings whose geometry is known:
four characters along orthogonal directions, held-out faces scattered around them."""

from __future__ import annotations

import numpy as np
import pytest

from models.openset import Kind, OpenSetThresholds, Seen, decide
from trainer.openset import fit, prototypes

CLASSES = 4
DIM = 32


def _faces(per_class: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(CLASSES), per_class)
    x = np.eye(DIM)[y] + rng.normal(0.0, spread, (len(y), DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _towards(character: int, similarity: float, protos: np.ndarray) -> np.ndarray:
    """An embedding off every character's direction whose best cosine to the prototypes is
    `similarity`, best with `character`."""
    off = np.eye(DIM)[CLASSES + 3]
    for w in np.linspace(0.0, 4.0, 4001):
        candidate = _unit(np.eye(DIM)[character] + w * off)
        if float((protos @ candidate).max()) <= similarity:
            assert int((protos @ candidate).argmax()) == character
            return candidate
    raise AssertionError(f"no embedding at similarity {similarity}")


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    memory, memory_y = _faces(60, 0.12, seed=1)
    held, held_y = _faces(50, 0.12, seed=2)
    return {"memory": memory, "memory_y": memory_y, "held": held, "held_y": held_y}


def test_known_gives_up_at_most_the_unanswered_share_of_held_out_faces(faces: dict[str, np.ndarray]) -> None:
    """The characters are far apart, so taking one out of the memory makes its faces look like
    strangers nobody would name (bar (a) is low); the coverage bar (b) then decides."""
    lax = fit(**faces, classes=CLASSES, max_unanswered=0.0).thresholds
    fitted = fit(**faces, classes=CLASSES, max_unanswered=0.2)
    best = (faces["held"] @ prototypes(faces["memory"], faces["memory_y"], CLASSES).T).max(1)
    assert fitted.thresholds.known > lax.known
    assert fitted.report["held_out_under_known"] == pytest.approx(0.2, abs=0.01)
    assert fitted.thresholds.known == pytest.approx(float(np.quantile(best, 0.2)))
    # a stranger between the two bars, close to character 0: the lax bar names it, the fitted one
    # does not
    protos = prototypes(faces["memory"], faces["memory_y"], CLASSES)
    counts = np.bincount(faces["memory_y"])
    similarity = protos @ _towards(0, (lax.known + fitted.thresholds.known) / 2, protos)
    assert decide(similarity, counts, lax).kind is Kind.NAME
    assert decide(similarity, counts, fitted.thresholds).kind is Kind.STRANGER


def test_a_picture_without_a_face_needs_the_bar_of_the_generated_non_pictures(
    faces: dict[str, np.ndarray],
) -> None:
    """Negatives that look a little like character 1: a picture as close as they are is "not a
    character" when no face was found in it, and still named when it is a face the finder found."""
    rng = np.random.default_rng(3)
    negatives = np.stack(
        [_unit(np.eye(DIM)[1] + rng.normal(0.0, rng.uniform(0.05, 0.5), DIM)) for _ in range(40)]
    )
    thresholds = fit(**faces, classes=CLASSES, negatives=negatives, max_unanswered=0.02).thresholds
    ceiling = float(
        np.quantile((negatives @ prototypes(faces["memory"], faces["memory_y"], CLASSES).T).max(1), 0.99)
    )
    assert thresholds.no_face == pytest.approx(max(thresholds.known, ceiling))
    assert thresholds.no_face > thresholds.known
    protos = prototypes(faces["memory"], faces["memory_y"], CLASSES)
    counts = np.bincount(faces["memory_y"])
    # between the two bars: close enough to character 1 to be its face, not enough for a picture
    # without one
    similarity = protos @ _towards(1, (thresholds.known + thresholds.no_face) / 2, protos)
    assert decide(similarity, counts, thresholds, seen=Seen.WEAKER_BOX).kind is Kind.NOT_CHARACTER
    found = decide(similarity, counts, thresholds, seen=Seen.FACE)
    assert found.kind is Kind.NAME and int(found.order[0]) == 1


def test_a_card_fitted_before_the_no_face_bar_reads_known_for_it() -> None:
    card = OpenSetThresholds.model_validate(
        {"sharpness": 10.0, "name": 0.5, "pair": 0.9, "known": 0.6, "not_character": 0.1}
    )
    assert card.no_face is None
    similarity = np.array([0.65, 0.1], dtype=np.float32)
    counts = np.array([100, 100])
    assert decide(similarity, counts, card, seen=Seen.WEAKER_BOX).kind is Kind.NAME
    assert decide(similarity - 0.1, counts, card, seen=Seen.WEAKER_BOX).kind is Kind.NOT_CHARACTER


def test_when_every_held_out_face_is_named_right_a_name_needs_only_a_majority(
    faces: dict[str, np.ndarray],
) -> None:
    """The held-out faces are all right and all sure (confidence near 1): their lowest confidence
    is where the data end, not a bar; a character from five examples, with no head to raise its
    confidence, is named once it is likelier than the others together."""
    fitted = fit(**faces, classes=CLASSES)
    assert fitted.report["held_out_precision"] == 1.0
    assert 0.5 < fitted.thresholds.name == pytest.approx(0.5)
    protos = prototypes(faces["memory"], faces["memory_y"], CLASSES)
    new = _unit(np.eye(DIM)[CLASSES + 5] + 0.5 * np.eye(DIM)[0])
    similarity = np.r_[protos @ new, 1.0].astype(np.float32)  # the new character's own prototype
    counts = np.r_[np.bincount(faces["memory_y"]), 5]
    head = np.r_[np.full(CLASSES, 1.0 / CLASSES), np.nan]
    decision = decide(similarity, counts, fitted.thresholds, head=head)
    assert decision.kind is Kind.NAME and int(decision.order[0]) == CLASSES


def test_with_mistakes_among_the_held_out_faces_the_name_bar_is_fitted_for_the_target(
    faces: dict[str, np.ndarray],
) -> None:
    rng = np.random.default_rng(5)
    noisy = faces["held_y"].copy()
    flip = rng.random(len(noisy)) < 0.1
    noisy[flip] = (noisy[flip] + 1) % CLASSES
    fitted = fit(**{**faces, "held_y": noisy}, classes=CLASSES)
    assert fitted.thresholds.name > 0.5
