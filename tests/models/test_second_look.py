"""The second look: a face whose first look lands near a bar is decided again on the face and its
mirror image averaged (models.open_world.OpenWorld.decide); the trainer fits the bars on two looks
and the margins on how far the second look moved held-out faces (trainer.openset.fit)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from models.open_world import OpenWorld
from models.openset import Kind, Looks, OpenSetThresholds, both_looks
from models.preprocess import mirrored
from tests.fixtures.openworld import looks, two_characters, unit
from trainer.openset import SECOND_LOOK_MIN_CONFIDENCE, SECOND_LOOK_QUANTILE, fit


def _world(second_look: tuple[float, float] | None) -> OpenWorld:
    """Two trained characters along the first two axes; "known" at cosine 0.8."""
    return two_characters([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], sharpness=20.0, second_look=second_look)


# first looks: just under "known" for A (0.79), clearly A (0.99), clearly nobody (0.45)
NEAR, SURE, FAR = (
    unit(np.array([[0.79, 0.0, 0.613]]))[0],
    unit(np.array([[0.99, 0.0, 0.14]]))[0],
    (unit(np.array([[0.45, 0.0, 0.893]]))[0]),
)
HEAD = np.array([[0.9, 0.1]] * 3)


class Second:
    """What a second look would see: the face squarely A's. Records which rows it was asked for."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def __call__(self, rows: list[int]) -> Looks:
        self.asked.append(list(rows))
        return looks(np.tile(unit(np.array([0.95, 0.0, 0.31])), (len(rows), 1)), HEAD[: len(rows)])


def test_only_a_face_near_a_bar_gets_its_second_look() -> None:
    second = Second()
    near, sure, far = _world((0.05, 0.1)).decide(looks(np.stack([NEAR, SURE, FAR]), HEAD), second=second)
    assert second.asked == [[0]]
    assert (near.kind, near.looks) == (Kind.NAME, 2) and near.candidates[0].label == "A"
    assert (sure.kind, sure.looks) == (Kind.NAME, 1)
    assert (far.kind, far.looks) == (Kind.STRANGER, 1)


def test_margins_decide_how_near_is_near() -> None:
    second = Second()
    decisions = _world((0.5, 0.0)).decide(looks(np.stack([NEAR, SURE, FAR]), HEAD), second=second)
    assert second.asked == [[0, 1, 2]] and [d.looks for d in decisions] == [2, 2, 2]
    # the far face is looked at again too, and its second look (squarely A) names it
    assert [d.kind for d in decisions] == [Kind.NAME] * 3


def test_a_card_without_margins_answers_on_the_first_look() -> None:
    second = Second()
    [near] = _world(None).decide(looks(NEAR[None, :], HEAD[:1]), second=second)
    assert second.asked == [] and (near.kind, near.looks) == (Kind.STRANGER, 1)
    # and without a second look to take, a card with margins answers on the first look too
    [alone] = _world((0.05, 0.1)).decide(looks(NEAR[None, :], HEAD[:1]))
    assert (alone.kind, alone.looks) == (Kind.STRANGER, 1)


def test_the_card_refuses_negative_margins() -> None:
    with pytest.raises(pydantic.ValidationError, match="second-look margins"):
        OpenSetThresholds(
            sharpness=1.0, name=0.5, pair=0.5, known=0.5, not_character=0.1, second_look=(-0.1, 0.1)
        )


def test_two_looks_average_probabilities_familiarity_and_vectors_at_unit_length() -> None:
    p, v, f = both_looks(
        looks(unit(np.array([[1.0, 0.0]])), np.array([[0.8, 0.2]]), 4.0),
        looks(unit(np.array([[0.0, 1.0]])), np.array([[0.6, 0.4]]), 3.0),
    )
    assert p == pytest.approx(np.array([[0.7, 0.3]]))
    assert v == pytest.approx(np.array([[0.7071, 0.7071]]), abs=1e-4)
    assert f == pytest.approx(np.array([3.5]))


def test_mirrored_flips_left_to_right() -> None:
    picture = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    [flipped] = mirrored([picture])
    assert flipped.flags.c_contiguous
    assert (flipped[:, 0] == picture[:, 2]).all() and (flipped[:, 2] == picture[:, 0]).all()


def _characters(per_class: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), per_class)
    return unit(np.eye(16)[y] + rng.normal(0.0, noise, (len(y), 16))), y


def test_the_trainer_fits_the_margins_on_what_the_second_look_moved() -> None:
    memory, memory_y = _characters(40, seed=1, noise=0.4)
    first, held_y = _characters(40, seed=2, noise=0.4)
    # a mirror image: the same face, seen with its own noise; the mean of two looks sits nearer
    mirror, _ = _characters(40, seed=3, noise=0.4)
    nothing = np.zeros((len(first), 0))
    held = both_looks(looks(first, nothing), looks(mirror, nothing)).vectors
    one = fit(memory, memory_y, first, held_y, 4).thresholds
    two = fit(memory, memory_y, held, held_y, 4, first_looks=(first, None, None)).thresholds
    assert one.second_look is None and two.second_look is not None
    protos = unit(np.stack([memory[memory_y == c].mean(0) for c in range(4)]))
    moved = np.abs((held @ protos.T).max(1) - (first @ protos.T).max(1))
    assert two.second_look[0] == pytest.approx(float(np.quantile(moved, SECOND_LOOK_QUANTILE)), abs=1e-6)
    assert two.second_look[1] >= SECOND_LOOK_MIN_CONFIDENCE
    # the rest is fitted on the two looks: averaged, they are cleaner, and the confidence sharper
    assert two.sharpness > one.sharpness * 1.2
