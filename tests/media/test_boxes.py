"""Detections matched to true boxes, as the face finder's training and benchmark count them."""

from __future__ import annotations

from media.boxes import match_detections


def test_each_true_box_is_taken_once_by_the_best_scored_detection() -> None:
    truth = [(0, 0, 100, 100), (300, 0, 100, 100)]
    found = [
        ((5, 5, 100, 100), 0.6),  # second best on the first face: a duplicate, a miss
        ((0, 0, 100, 100), 0.9),
        ((300, 0, 100, 100), 0.8),
        ((600, 0, 50, 50), 0.7),  # nowhere near a face
    ]
    assert match_detections(found, truth, 0.3) == [(0.9, True), (0.8, True), (0.7, False), (0.6, False)]


def test_an_overlap_below_the_bound_is_a_miss() -> None:
    truth = [(0, 0, 100, 100)]
    found = [((50, 0, 100, 100), 0.9)]  # IoU 1/3
    assert match_detections(found, truth, 0.5) == [(0.9, False)]
    assert match_detections(found, truth, 0.3) == [(0.9, True)]
