"""How the head's probabilities join the memory's: the confidence (models.openset.combine) and
the order of the candidates (models.openset.rank, used by decide)."""

from __future__ import annotations

import numpy as np
import pytest

from models.openset import EXAMPLE_RIVAL, Kind, OpenSetThresholds, Seen, combine, decide, rank

# Characters: A and B trained, N known from a few examples (no head column). The memory leans to
# N; the head, which never saw N, is sure it is A.
MEMORY = np.array([0.35, 0.05, 0.6])
HEAD = np.array([0.95, 0.05, np.nan])


def test_with_only_trained_characters_both_are_the_mean_of_the_two() -> None:
    memory = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    head = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    assert combine(memory, head) == pytest.approx((memory + head) / 2)
    assert rank(memory, head) == pytest.approx((memory + head) / 2)


def test_a_face_the_memory_gives_to_a_new_character_is_not_taken_back_by_the_head() -> None:
    # the plain mean puts A first: (0.35 + 0.95) / 2 = 0.65 > 0.6
    assert int(combine(MEMORY, HEAD).argmax()) == 0
    order = rank(MEMORY, HEAD)
    assert int(order.argmax()) == 2
    assert order.sum() == pytest.approx(1.0)
    # rows one by one
    both = rank(np.stack([MEMORY, [0.9, 0.05, 0.05]]), np.stack([HEAD, HEAD]))
    assert [int(i) for i in both.argmax(1)] == [2, 0]


def test_decide_offers_the_new_character_first_with_the_confidence_the_bar_was_fitted_on() -> None:
    thresholds = OpenSetThresholds(sharpness=1.0, name=0.9, pair=0.9, known=-10.0, not_character=-20.0)
    # similarities whose softmax (sharpness 1) is MEMORY: log-probabilities
    similarity = np.log(MEMORY).astype(np.float32)
    decision = decide(similarity, np.array([100, 100, 5]), thresholds, head=HEAD)
    assert [int(i) for i in decision.order[:2]] == [2, 0]
    assert decision.confidence == pytest.approx(combine(MEMORY, HEAD))
    # neither is sure enough to be named; together they are "one of these two"
    assert decision.kind is Kind.PAIR


@pytest.mark.parametrize(
    ("memory", "kind", "second"),
    [
        # the memory leans to A, and N (from examples) holds over a quarter of it: one of A and N
        (np.array([0.68, 0.05, 0.27]), Kind.PAIR, 2),
        # N holds less: A is named as before
        (np.array([0.75, 0.05, 0.2]), Kind.NAME, None),
    ],
)
def test_a_trained_name_near_a_character_known_from_examples_is_one_of_two(
    memory: np.ndarray, kind: Kind, second: int | None
) -> None:
    """The head agrees on A, but it never saw N: with N at EXAMPLE_RIVAL of the memory's
    confidence or more, the answer offers both, A first."""
    assert EXAMPLE_RIVAL == 0.25
    thresholds = OpenSetThresholds(sharpness=1.0, name=0.5, pair=0.9, known=-10.0, not_character=-20.0)
    similarity = np.log(memory).astype(np.float32)
    decision = decide(similarity, np.array([100, 100, 20]), thresholds, head=HEAD)
    assert decision.kind is kind
    assert int(decision.order[0]) == 0
    if second is not None:
        assert int(decision.order[1]) == second


def test_without_characters_known_from_examples_a_trained_name_stays_a_name() -> None:
    thresholds = OpenSetThresholds(sharpness=1.0, name=0.5, pair=0.9, known=-10.0, not_character=-20.0)
    memory = np.array([0.7, 0.3])
    decision = decide(
        np.log(memory).astype(np.float32), np.array([100, 100]), thresholds, head=np.array([0.9, 0.1])
    )
    assert decision.kind is Kind.NAME and int(decision.order[0]) == 0


def test_a_picture_without_a_face_is_not_named_as_a_character_known_from_examples() -> None:
    """The regions of a picture with no face found: a trained character may still be named, one
    known from examples only may not (it has no head to hold its evidence down)."""
    thresholds = OpenSetThresholds(sharpness=1.0, name=0.5, pair=0.9, known=-10.0, not_character=-20.0)
    faces = np.array([100, 100, 20])
    for memory, best, kinds in (
        (np.array([0.05, 0.05, 0.9]), 2, (Kind.NAME, Kind.STRANGER)),  # N, from examples
        (np.array([0.9, 0.05, 0.05]), 0, (Kind.NAME, Kind.NAME)),  # A, trained
    ):
        similarity = np.log(memory).astype(np.float32)
        for seen, kind in zip((Seen.WEAKER_BOX, Seen.REGIONS), kinds, strict=True):
            decision = decide(similarity, faces, thresholds, head=HEAD, seen=seen)
            assert int(decision.order[0]) == best and decision.kind is kind
