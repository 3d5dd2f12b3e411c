"""Temperature scaling, expected calibration error and the "unknown" threshold."""

from __future__ import annotations

import numpy as np
import pytest

from models.openset import softmax
from trainer.calibration import (
    T_MIN,
    expected_calibration_error,
    fit_temperature,
    threshold_for_precision,
)


def _calibrated_logits(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction: labels are drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, classes))
    probs = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits, labels


@pytest.mark.parametrize("overconfidence", [0.4, 3.0])
def test_temperature_undoes_over_and_under_confidence(overconfidence: float) -> None:
    logits, labels = _calibrated_logits(4000, 6, seed=1)
    distorted = logits * overconfidence
    temperature = fit_temperature(distorted, labels)
    assert temperature == pytest.approx(overconfidence, rel=0.15)
    before = expected_calibration_error(softmax(distorted), labels)
    after = expected_calibration_error(softmax(distorted, 1.0 / temperature), labels)
    assert after < before
    assert after < 0.03


def test_ece_is_zero_for_perfect_confidence_and_large_for_wrong_certainty() -> None:
    labels = np.array([0, 1, 2, 0])
    certain_right = np.eye(3)[labels]
    certain_wrong = np.eye(3)[(labels + 1) % 3]
    assert expected_calibration_error(certain_right, labels) == pytest.approx(0.0)
    assert expected_calibration_error(certain_wrong, labels) == pytest.approx(1.0)


def test_threshold_reaches_the_target_precision_with_the_most_coverage() -> None:
    # Ten answers, most confident first; the 4th and 7th are wrong.
    confidence = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.65, 0.6, 0.55, 0.52])
    correct = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 0], dtype=bool)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels = np.where(correct, 0, 1)
    choice = threshold_for_precision(probs, labels, target=0.8)
    assert choice.reached_target
    # Accepting the top 6 gives 5/6 = 0.83; the top 9 gives 7/9 = 0.78 < 0.8.
    assert choice.threshold == pytest.approx(0.7)
    assert choice.precision == pytest.approx(5 / 6)
    assert choice.coverage == pytest.approx(0.6)
    strict = threshold_for_precision(probs, labels, target=1.0)
    assert strict.threshold == pytest.approx(0.9) and strict.precision == 1.0
    impossible = threshold_for_precision(np.array([[0.6, 0.4]]), np.array([1]), target=0.9)
    assert not impossible.reached_target


def test_a_perfectly_separated_validation_set_does_not_push_temperature_to_zero() -> None:
    labels = np.arange(40) % 4
    logits = np.eye(4)[labels] * 3.0  # every answer right, modestly confident
    assert fit_temperature(logits, labels) == pytest.approx(T_MIN)
