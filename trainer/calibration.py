"""Calibration: temperature scaling fitted on validation, expected calibration error, and the
"unknown" threshold that reaches a target precision.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T > 0 chosen to minimize
the validation negative log-likelihood; it never changes which class wins, only how sure the model
says it is. Label smoothing makes networks under-confident, so T usually comes out below 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from models.openset import softmax

log = logging.getLogger(__name__)

ECE_BINS = 15
# On a small validation set the network may separate every image; the NLL then keeps falling as
# T -> 0 and would make every answer "100% sure". The bounds keep T in the range where scaling
# corrects label smoothing's under-confidence or over-fitting's over-confidence, no further.
T_MIN, T_MAX = 0.25, 10.0


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The T that minimizes NLL of softmax(logits / T) on (logits, y_true); 1.0 without data."""
    if len(y_true) == 0:
        return 1.0
    x = torch.from_numpy(logits.astype(np.float64))
    y = torch.from_numpy(y_true.astype(np.int64))
    # A coarse grid first (NLL in log T is not always convex enough for LBFGS from 1.0) ...
    grid = np.exp(np.linspace(np.log(T_MIN), np.log(T_MAX), 200))
    with torch.no_grad():
        losses = [float(torch.nn.functional.cross_entropy(x / t, y)) for t in grid]
    log_t = torch.tensor(np.log(grid[int(np.argmin(losses))]), dtype=torch.float64, requires_grad=True)
    # ... then LBFGS to refine it.
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(float(log_t.detach().exp()), T_MIN, T_MAX))


def shipped_temperature(logits: np.ndarray, y_true: np.ndarray) -> tuple[float, float]:
    """(the temperature a version ships, the one NLL fitted): the fitted one unless it raises the
    validation ECE, then 1.0 (NLL-optimal is not ECE-optimal on a small validation set; never ship
    a worse calibration)."""
    fitted = fit_temperature(logits, y_true)
    raw = expected_calibration_error(softmax(logits), y_true)
    scaled = expected_calibration_error(softmax(logits, 1.0 / fitted), y_true)
    if scaled > raw:
        log.info("temperature %.3f raises validation ECE (%.4f > %.4f); keeping T = 1", fitted, scaled, raw)
        return 1.0, fitted
    return fitted, fitted


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins of the top class."""
    if len(y_true) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability(probs: np.ndarray, y_true: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per-bin confidence, accuracy and count, for the reliability diagram."""
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == y_true if len(probs) else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()) if mask.any() else 0.0,
                "accuracy": float(correct[mask].mean()) if mask.any() else 0.0,
            }
        )
    return rows


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    precision: float  # of the answers at or above the threshold
    coverage: float  # share of images that get an answer instead of "unknown"
    reached_target: bool


def threshold_for_precision(probs: np.ndarray, y_true: np.ndarray, target: float) -> ThresholdChoice:
    """The lowest top-probability threshold whose accepted answers reach `target` precision.
    If none does, the threshold with the best precision (the answer is then mostly "unknown")."""
    if len(y_true) == 0:
        return ThresholdChoice(0.5, 0.0, 0.0, False)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    accepted = np.arange(1, len(order) + 1)
    precision = hits / accepted
    # Accepting the k most confident answers means threshold = confidence of the k-th; choose the
    # largest k whose precision reaches the target, and only where the next confidence differs.
    sorted_conf = confidence[order]
    distinct = np.r_[sorted_conf[1:] < sorted_conf[:-1], True]
    good = np.nonzero((precision >= target) & distinct)[0]
    if len(good):
        k = int(good[-1])
        return ThresholdChoice(float(sorted_conf[k]), float(precision[k]), (k + 1) / len(order), True)
    k = int(np.argmax(np.where(distinct, precision, -1)))
    return ThresholdChoice(float(sorted_conf[k]), float(precision[k]), (k + 1) / len(order), False)
