"""Fitting the open-set thresholds (`models.openset.OpenSetThresholds`) on held-out faces.

Inputs: the memory (embeddings and labels of the training faces), held-out faces of the same
characters with their labels (the validation split), and pictures that are no character at all
(generated here: noise, flat colours, gradients, stripes). Steps:

1. Offsets: for n faces, how much lower a held-out face's cosine to a prototype of n random faces
   of its character is than to the prototype of all of them (averaged over characters and draws).
2. Sharpness: the softmax scale that minimizes the held-out faces' negative log-likelihood.
3. "A character I don't know": `known` is the higher of two bars. (a) Every character in turn is
   taken out of the memory and its held-out faces become strangers; at most `max_strangers` of them
   may still reach the bar. (b) At most `max_unanswered` of the held-out faces of the trained
   characters may fall under it. (a) alone is too lax: the net was trained on the characters taken
   out, so they sit farther from the others than a real stranger does (on the real dev set (a) let
   57% of strangers be named); (b) spends a fixed share of coverage on keeping strangers out, and
   needs no stranger of the real world either.
4. Names: the lowest confidence whose named held-out faces reach `target_precision` (when all of
   them past `known` do, 0.5 at most: likelier than the others together); pairs: the lowest top-two
   confidence whose pair holds the right character at that precision.
5. "Not a character": between the generated non-pictures' best similarity and the held-out faces'.
   A picture where no face was found must also reach `no_face`: what 99% of the generated
   non-pictures stay under (and at least `known`); without a face, a picture that merely looks a
   little like a character is far more often no character at all (photographs, patterns).
6. Familiarity: with held-out faces' largest raw logits and a weight w, a trained character's
   evidence gains w * (m - mean) * sd(best cosines) / sd(m): w standard deviations of the best
   cosine for each standard deviation of the largest logit, 0 on average over held-out faces. The
   bars of 3 (b), 4 and 5 are fitted on the evidence with it (`models.openset`); 3 (a) without,
   since the head was trained on the characters it takes out.
7. The second look: when the held-out faces (and the non-pictures) are each the mean of two looks,
   the face and its mirror image, the bars above are fitted on those, and the card gets the margins
   within which a face's first look must land of a bar to be looked at again: how far the second
   look moved `SECOND_LOOK_QUANTILE` of the held-out faces (`trainer.openset_run` makes the looks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.openset import OpenSetThresholds, combine, familiarity_bonus, gated, softmax

OFFSET_COUNTS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100, 200)
OFFSET_DRAWS = 8
FACE_QUANTILE = 0.005  # at most this share of held-out faces may fall under "not a character"
# When every held-out face is answered right the likelihood keeps rising with the sharpness and
# would make every answer "100% sure" (as with temperature scaling, trainer.calibration's T_MIN);
# cosines between characters differ by 0.05-0.3, so 100 already spreads them over the whole range.
SHARPNESS_RANGE = (1.0, 100.0)
NEGATIVES_QUANTILE = 0.99
# A face gets its second look (its mirror image) when its first lands within what the second moved
# this share of held-out faces by, of a bar: past it, the mean of two looks answers as the first did.
SECOND_LOOK_QUANTILE = 0.9
# ... and the confidence margin is at least this. Held-out faces of trained characters are mostly
# sure (the head agrees), so their confidence hardly moves (0.008 at the quantile on the dev set);
# a new character's faces, known from the memory alone, are not. Dev set, 160 px default run:
# a new character from 20 faces 0.898 (the fitted margin) / 0.899 (0.1) / 0.903 (0.3) top-1, with
# the known characters' and the strangers' answers and second looks the same.
SECOND_LOOK_MIN_CONFIDENCE = 0.3
# a name "likelier than all the others together": strictly more than half, so that two characters
# the memory cannot tell apart (0.5 each) are "one of these two", not the first of them
MAJORITY = float(np.nextafter(0.5, 1.0))


@dataclass
class OpenSetFit:
    thresholds: OpenSetThresholds
    report: dict[str, Any] = field(default_factory=dict)


def prototypes(embeddings: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    means = np.stack([embeddings[labels == c].mean(0) for c in range(classes)])
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fit_offsets(
    memory: np.ndarray, memory_y: np.ndarray, held: np.ndarray, held_y: np.ndarray, classes: int, seed: int
) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    full = prototypes(memory, memory_y, classes)
    offsets: dict[int, float] = {}
    for n in OFFSET_COUNTS:
        gaps = []
        for c in range(classes):
            rows = np.nonzero(memory_y == c)[0]
            queries = held[held_y == c]
            if len(rows) <= n or not len(queries):
                continue
            for _ in range(OFFSET_DRAWS):
                mean = memory[rng.choice(rows, n, replace=False)].mean(0)
                proto = mean / max(float(np.linalg.norm(mean)), 1e-12)
                gaps.append(float((queries @ full[c] - queries @ proto).mean()))
        if gaps:
            offsets[n] = max(0.0, float(np.mean(gaps)))
    # never rising with more faces: noise between draws must not reorder the table
    running = np.inf
    for n in sorted(offsets):
        running = min(running, offsets[n])
        offsets[n] = running
    return offsets


def fit_sharpness(evidence: np.ndarray, y: np.ndarray) -> float:
    """The scale k minimizing the NLL of softmax(k * evidence): a grid in log k, then golden section."""

    def nll(log_k: float) -> float:
        p = softmax(evidence, float(np.exp(log_k)))
        return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())

    grid = np.linspace(np.log(SHARPNESS_RANGE[0]), np.log(SHARPNESS_RANGE[1]), 60)
    losses = [nll(g) for g in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    golden = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def _lowest_reaching(scores: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest score threshold whose accepted items (score >= threshold) reach `target` precision;
    above every score (nothing accepted) when none does."""
    if not len(scores):
        return 1.0
    order = np.argsort(-scores, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ranked = scores[order]
    distinct = np.r_[ranked[1:] < ranked[:-1], True]
    good = np.nonzero((precision >= target) & distinct)[0]
    if not len(good):
        return float(np.nextafter(ranked[0], np.inf))
    return float(ranked[good[-1]])


def fit_familiarity(
    best: np.ndarray, largest_logits: np.ndarray | None, weight: float
) -> tuple[float, float] | None:
    """(centre, scale) that turn the head's largest logit into evidence (step 6); None when it has
    no weight or the held-out faces' logits do not vary."""
    if weight <= 0.0 or largest_logits is None or len(largest_logits) < 2:
        return None
    spread = float(np.std(largest_logits))
    if spread <= 0.0:
        return None
    return float(np.mean(largest_logits)), weight * float(np.std(best)) / spread


def fit(
    memory: np.ndarray,
    memory_y: np.ndarray,
    held: np.ndarray,
    held_y: np.ndarray,
    classes: int,
    *,
    negatives: np.ndarray | None = None,
    held_head: np.ndarray | None = None,
    target_precision: float = 0.98,
    max_strangers: float = 0.05,
    max_unanswered: float = 0.08,
    min_examples: int = 5,
    colour: float = 0.0,
    gate: tuple[int, int] | None = None,
    first_looks: tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None = None,
    held_familiarity: np.ndarray | None = None,
    familiarity: float = 0.0,
    seed: int = 0,
) -> OpenSetFit:
    """Fit every open-set number on held-out faces (see the module docstring). `held_head`: the
    head's calibrated probabilities of the held-out faces, as the answer will combine them;
    `gate`: columns the "known" and "not a character" bars leave out (`models.openset.gated`);
    `first_looks`: (vectors, head probabilities, largest logits) of the held-out faces as first
    seen, when `held`, `held_head`, `held_familiarity` and `negatives` are two looks averaged: the
    card then gets the second look's margins, what the second look moved `SECOND_LOOK_QUANTILE` of
    these faces by; `held_familiarity`: the head's largest raw logit per held-out face, which the
    evidence of trained characters weighs at `familiarity` (0: not at all)."""
    if classes < 2:
        raise ValueError("open-set thresholds need at least two characters")
    offsets = fit_offsets(memory, memory_y, held, held_y, classes, seed)
    protos = prototypes(memory, memory_y, classes)
    similarity = held @ protos.T
    # the bars on the vectors without the gate's columns, with prototypes as the memory makes them
    gate_protos = gated(protos, gate)
    gate_offsets = {}
    gate_similarity = similarity
    if gate is not None:
        gate_held = gated(held, gate)
        gate_offsets = fit_offsets(gated(memory, gate), memory_y, gate_held, held_y, classes, seed)
        gate_similarity = gate_held @ gate_protos.T
    sharpness = fit_sharpness(similarity, held_y)
    # what decide() names by: the memory's confidence, averaged with the head's where it has one
    confidence = combine(softmax(similarity, sharpness), held_head)
    best = confidence.argmax(1)

    raw_best = gate_similarity.max(1)
    fitted_familiarity = fit_familiarity(raw_best, held_familiarity, familiarity)
    bonus = familiarity_bonus(fitted_familiarity, held_familiarity) + np.zeros(len(held_y))
    # strangers: each character's held-out faces against the other characters' prototypes
    stranger_evidence = np.empty(len(held_y), dtype=np.float64)
    for c in range(classes):
        rows = held_y == c
        others = np.delete(gate_similarity[rows], c, axis=1)
        stranger_evidence[rows] = others.max(1) if others.shape[1] else -1.0
    # no bonus for them: the head was trained on these faces, so they are as familiar to it as
    # any, which a real stranger is not
    face_best = raw_best + bonus
    known = 0.0
    if len(held_y):
        known = max(
            float(np.quantile(stranger_evidence, 1.0 - max_strangers)),
            float(np.quantile(face_best, max_unanswered)),
        )
    passing = gate_similarity[np.arange(len(held_y)), best] + bonus >= known
    right = best == held_y
    name = _lowest_reaching(confidence.max(1)[passing], right[passing], target_precision)
    if passing.any() and right[passing].mean() >= target_precision:
        # Every held-out face past `known` is named at the target: the data set no bar above it,
        # and the lowest confidence they happened to show is no bar either (a well-trained net's
        # held-out faces all sat above 0.95, and a character added from examples, which has no
        # head to raise its confidence, could then never be named). A name then only has to be
        # likelier than all the others together.
        name = min(name, MAJORITY)
    ranked = np.sort(confidence, axis=1)
    top_two = ranked[:, -1] + (ranked[:, -2] if classes > 1 else 0.0)
    pair_hit = (np.argsort(-confidence, axis=1)[:, :2] == held_y[:, None]).any(1)
    undecided = passing & (confidence.max(1) < name)
    # Two together must hold at least what one alone needs; with no undecided held-out face to fit
    # on (a small, clean validation split), that is the threshold itself.
    pair = name
    if undecided.any():
        pair = max(name, _lowest_reaching(top_two[undecided], pair_hit[undecided], target_precision))

    face_floor = float(np.quantile(raw_best, FACE_QUANTILE))
    no_face = known
    if negatives is not None and len(negatives):
        negative_best = (gated(negatives, gate) @ gate_protos.T).max(1)
        ceiling = float(np.quantile(negative_best, NEGATIVES_QUANTILE))
        not_character = (ceiling + face_floor) / 2 if ceiling < face_floor else face_floor
        no_face = max(known, ceiling)
    else:
        negative_best = np.zeros(0)
        not_character = face_floor
    second_look = None
    if first_looks is not None and len(held_y):
        first, first_head, first_familiarity = first_looks
        first_best = (gated(first, gate) @ gate_protos.T).max(1) + familiarity_bonus(
            fitted_familiarity, first_familiarity
        )
        moved = np.abs(face_best - first_best)
        first_confidence = combine(softmax(first @ protos.T, sharpness), first_head).max(1)
        swayed = np.abs(confidence.max(1) - first_confidence)
        second_look = (
            float(np.quantile(moved, SECOND_LOOK_QUANTILE)),
            max(SECOND_LOOK_MIN_CONFIDENCE, float(np.quantile(swayed, SECOND_LOOK_QUANTILE))),
        )
    thresholds = OpenSetThresholds(
        sharpness=sharpness,
        name=float(np.clip(name, 0.0, 1.0)),
        pair=float(np.clip(pair, 0.0, 2.0)),
        known=known,
        not_character=not_character,
        no_face=no_face,
        offsets=offsets,
        min_examples=min_examples,
        target_precision=target_precision,
        colour=colour,
        gate=gate,
        gate_offsets=gate_offsets,
        second_look=second_look,
        familiarity=fitted_familiarity,
        fitted_on={
            "memory_faces": len(memory_y),
            "held_out_faces": len(held_y),
            "negatives": len(negative_best),
        },
    )
    named = passing & (confidence.max(1) >= thresholds.name)
    report = {
        "held_out_coverage": float(named.mean()) if len(named) else 0.0,
        "held_out_precision": float(right[named].mean()) if named.any() else 0.0,
        "held_out_under_known": float((face_best < known).mean()) if len(held_y) else 0.0,
        "held_out_pairs": float((undecided & (top_two >= thresholds.pair)).mean()) if len(named) else 0.0,
        "pseudo_strangers_named": float((stranger_evidence >= known).mean()) if len(held_y) else 0.0,
        "negatives_best_similarity_p99": float(np.quantile(negative_best, 0.99))
        if len(negative_best)
        else None,
        "faces_best_similarity_p0.5": face_floor,
    }
    return OpenSetFit(thresholds, report)
