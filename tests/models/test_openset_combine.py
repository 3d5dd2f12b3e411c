"""How the head's probabilities join the memory's (models.openset.combine)."""

from __future__ import annotations

import numpy as np
import pytest

from models.openset import combine


def test_with_only_trained_characters_it_is_the_mean_of_the_two() -> None:
    memory = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    head = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    assert combine(memory, head) == pytest.approx((memory + head) / 2)


def test_a_face_the_memory_gives_to_a_new_character_is_not_taken_back_by_the_head() -> None:
    """Characters: A and B trained, N known from a few examples (no head column). The memory
    leans to N; the head, which never saw N, is sure it is A."""
    memory = np.array([0.35, 0.05, 0.6])
    head = np.array([0.95, 0.05, np.nan])
    out = combine(memory, head)
    assert int(out.argmax()) == 2
    # the plain mean would have named A: (0.35 + 0.95) / 2 = 0.65 > 0.6
    assert (memory[0] + head[0]) / 2 > memory[2]
    assert out.sum() == pytest.approx(1.0)
    assert out[2] == pytest.approx(0.6)


def test_rows_are_combined_one_by_one() -> None:
    memory = np.array([[0.35, 0.05, 0.6], [0.9, 0.05, 0.05]])
    head = np.array([[0.95, 0.05, np.nan], [0.95, 0.05, np.nan]])
    out = combine(memory, head)
    assert [int(i) for i in out.argmax(1)] == [2, 0]
    assert out.sum(1) == pytest.approx([1.0, 1.0])
    assert out[1] == pytest.approx(combine(memory[1], head[1]))
