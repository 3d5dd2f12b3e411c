"""`namae eval`: a model version in the open world, on folders of pictures.

    known/<character>/*      characters the version was trained on (or has in its memory)
    unknown/<character>/*    characters it does not know: strangers first, then the few-shot curve
    not-characters/**        pictures with no character in them

Every picture is answered by the product's rule (`models.open_world.OpenWorld`: the trained head, the
character memory and the card's fitted thresholds) and, beside it, by today's closed-set rule (the
head's calibrated top probability against the card's threshold), so each figure has its baseline
in the same run. Known and unknown pictures are taken as face crops (in batches, decided by the very
`OpenWorld.decide` the answer path calls); not-characters go through the answer path itself
(`models.answer.answer_pixels`, with the face finder when one is given), as the bot sees them.

Few-shot: for each draw, each unknown character's pictures are shuffled; the first k join a copy of
the memory and the pictures past the largest k are answered, so every k is scored on the same
held-out pictures. Known characters are answered again with the grown memory, to show what adding
characters costs them. And since a community adds characters while strangers keep coming, each draw
also adds only half of the unknown characters (chosen at random) and answers every picture of the
other half, which are still strangers: how often a stranger is named once the memory has grown, and
how often as one of the characters just added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from media.faces import FaceFinder
from models.classifier import Classifier
from models.memory import CharacterMemory, MemoryEntry
from models.open_world import FaceDecision, OpenWorld
from models.openset import Kind
from trainer import TrainingError
from trainer.openeval_answers import (
    Answered,
    Pictures,
    answer_as_posted,
    decide_all,
    every_member_share,
    kinds,
    known_figures,
    mistaken_for,
    name_given,
    run_model,
    second_looks,
    today,
)

SHOTS = (1, 5, 10, 20)


def _auroc(known: np.ndarray, other: np.ndarray) -> float | None:
    if not len(known) or not len(other):
        return None
    truth = np.r_[np.ones(len(known)), np.zeros(len(other))]
    return float(roc_auc_score(truth, np.r_[known, other]))


def evaluate(
    classifier: Classifier,
    memory: CharacterMemory,
    known: Pictures,
    *,
    unknown: Pictures | None = None,
    not_characters: Pictures | None = None,
    finder: FaceFinder | None = None,
    shots: tuple[int, ...] = SHOTS,
    draws: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    """Every figure `namae eval` reports, as plain data (see the module docstring)."""
    card = classifier.card
    if card.open_set is None:
        raise TrainingError(
            f"model {card.version} has no open-set thresholds (it was trained before the character "
            "memory); retrain it to evaluate the open-set answer"
        )
    world = OpenWorld.for_card(card, memory)
    labels = sorted(set(known.labels) - {None})  # type: ignore[arg-type]
    progress(f"answering {len(known.images)} pictures of {len(labels)} known characters")
    answered = run_model(classifier, known)
    decisions = decide_all(world, answered)
    truth = [str(label) for label in known.labels]
    new_pred = [name_given(d) for d in decisions]
    named_today, best_today = today(classifier, answered)
    old_pred = [classifier.labels[b] if n else None for n, b in zip(named_today, best_today, strict=True)]
    result: dict[str, Any] = {
        "version": card.version,
        "graph": classifier.graph,
        "members": world.members,
        "labels": labels,
        "thresholds": card.open_set.model_dump(mode="json"),
        "known": {
            "pictures": len(truth),
            "skipped": known.skipped,
            "answer": known_figures(labels, truth, new_pred),
            "today": known_figures(labels, truth, old_pred),
            "closed_set_macro_f1": known_figures(labels, truth, [d.candidates[0].label for d in decisions])[
                "macro_f1"
            ],
            "kinds": kinds(decisions),
            "second_looks": second_looks(decisions),
            "every_member": every_member_share(world, decisions),
            "pair_holds_truth": _pair_truth(decisions, truth),
        },
        "curve": _coverage_curve(decisions, truth, answered, classifier, world),
    }
    result["_plots"] = {"known_truth": truth, "known_pred": new_pred, "decisions": decisions}
    # the separation of the version's whole graph (member 1's evidence is on another scale)
    known_evidence = np.array([d.evidence for d in decide_all(world, answered, in_turn=False)])
    known_today = answered.first.probabilities.max(1)
    if unknown is not None and unknown.images:
        progress(f"answering {len(unknown.images)} pictures of characters the model does not know")
        strangers = run_model(classifier, unknown)
        stranger_decisions = decide_all(world, strangers)
        named_today, _ = today(classifier, strangers)
        result["unknown"] = {
            "pictures": len(unknown.images),
            "characters": sorted({str(label) for label in unknown.labels}),
            "named": kinds(stranger_decisions)[Kind.NAME.value],
            "named_today": float(named_today.mean()),
            "kinds": kinds(stranger_decisions),
            "second_looks": second_looks(stranger_decisions),
            "every_member": every_member_share(world, stranger_decisions),
            "by_character": mistaken_for([str(label) for label in unknown.labels], stranger_decisions),
            "auroc": _auroc(
                known_evidence, np.array([d.evidence for d in decide_all(world, strangers, in_turn=False)])
            ),
            "auroc_today": _auroc(known_today, strangers.first.probabilities.max(1)),
        }
        progress("few-shot: adding examples of the unknown characters to the memory")
        result["few_shot"] = few_shot(
            classifier, memory, unknown, strangers, answered, truth, labels,
            shots=shots, draws=draws, seed=seed,
        )  # fmt: skip
    if not_characters is not None and not_characters.images:
        progress(f"answering {len(not_characters.images)} pictures without a character")
        # the product's kinds through the bot's own path (faces found, or the whole picture) ...
        whole = [d for d, _ in answer_as_posted(classifier, not_characters, finder)]
        # ... and the scores of the whole pictures, for the AUROC and today's answer
        others = run_model(classifier, not_characters)
        named_today, _ = today(classifier, others)
        result["not_characters"] = {
            "pictures": len(not_characters.images),
            "named": kinds(whole)[Kind.NAME.value],
            "named_today": float(named_today.mean()),
            "kinds": kinds(whole),
            "auroc": _auroc(
                known_evidence, np.array([d.evidence for d in decide_all(world, others, in_turn=False)])
            ),
            "auroc_today": _auroc(known_today, others.first.probabilities.max(1)),
        }
    return result


def _pair_truth(decisions: list[FaceDecision], truth: list[str]) -> float | None:
    pairs = [(d, t) for d, t in zip(decisions, truth, strict=True) if d.kind is Kind.PAIR]
    if not pairs:
        return None
    return sum(t in {c.label for c in d.candidates[:2]} for d, t in pairs) / len(pairs)


def _coverage_curve(
    decisions: list[FaceDecision],
    truth: list[str],
    answered: Answered,
    classifier: Classifier,
    world: OpenWorld,
) -> dict[str, list[float]]:
    """Precision against coverage on known characters, sweeping the naming confidence: the
    open-set answer (faces past the stranger gate) and today's head alone."""

    def curve(
        confidence: np.ndarray, right: np.ndarray, allowed: np.ndarray
    ) -> tuple[list[float], list[float]]:
        order = np.argsort(-np.where(allowed, confidence, -np.inf), kind="stable")
        order = order[allowed[order]]
        hits = np.cumsum(right[order])
        n = np.arange(1, len(order) + 1)
        coverage = (n / max(1, len(truth))).tolist()
        precision = (hits / n).tolist()
        return coverage, precision

    confidence = np.array([d.candidates[0].probability if d.candidates else 0.0 for d in decisions])
    right = np.array(
        [bool(d.candidates) and d.candidates[0].label == t for d, t in zip(decisions, truth, strict=True)]
    )
    # each face past the stranger bar of the look that decided it (member 1's, or every member's)
    gate = np.array([d.evidence >= world.deciding(d).thresholds.known for d in decisions], dtype=bool)
    cov, prec = curve(confidence, right, gate)
    best = answered.first.probabilities.argmax(1) if len(truth) else np.zeros(0, dtype=int)
    right_today = np.array([classifier.labels[b] == t for b, t in zip(best, truth, strict=True)])
    cov_t, prec_t = curve(answered.first.probabilities.max(1), right_today, np.ones(len(truth), dtype=bool))
    return {"coverage": cov, "precision": prec, "coverage_today": cov_t, "precision_today": prec_t}


def few_shot(
    classifier: Classifier,
    memory: CharacterMemory,
    unknown: Pictures,
    strangers: Answered,
    known_answered: Answered,
    known_truth: list[str],
    known_labels: list[str],
    *,
    shots: tuple[int, ...],
    draws: int,
    seed: int,
) -> dict[str, Any]:
    card = classifier.card
    assert card.open_set is not None
    rng = np.random.default_rng(seed)
    halves = np.random.default_rng(seed + 1)  # its own stream: the draws above stay as they were
    characters = sorted({str(label) for label in unknown.labels})
    largest = max(shots)
    rows_of = {c: np.nonzero(np.array(unknown.labels, dtype=object) == c)[0] for c in characters}
    usable = [c for c in characters if len(rows_of[c]) > largest]
    figures: dict[int, dict[str, list[float]]] = {k: {} for k in shots}
    for _ in range(draws):
        order = {c: rng.permutation(rows_of[c]) for c in usable}
        held = np.concatenate([order[c][largest:] for c in usable]) if usable else np.zeros(0, dtype=int)
        truth = [str(unknown.labels[i]) for i in held]
        sub = strangers.rows(held)
        added = [str(c) for c in halves.permutation(usable)[: len(usable) // 2]]
        # the other half stays strangers: what the memory as it was names of them, once per draw
        still = strangers.rows(
            np.array([i for i, c in enumerate(unknown.labels) if c not in added], dtype=int)
        )
        before = (
            kinds(decide_all(OpenWorld.for_card(card, memory, min_examples=1), still))[Kind.NAME.value]
            if added
            else 0.0
        )
        for k in shots:
            world = OpenWorld.for_card(
                card, _grown(memory, unknown, strangers, order, usable, k), min_examples=1
            )
            decisions = decide_all(world, sub)
            best = [d.candidates[0].label for d in decisions]
            new_only = _best_among(world, strangers.first.vectors[held], usable)
            known_decisions = decide_all(world, known_answered)
            known_pred = [name_given(d) for d in known_decisions]
            row = figures[k]
            for key, value in (
                ("top1", np.mean([b == t for b, t in zip(best, truth, strict=True)])),
                ("top1_among_new", np.mean([b == t for b, t in zip(new_only, truth, strict=True)])),
                ("named_right", np.mean([d.kind is Kind.NAME and b == t for d, b, t in zip(decisions, best, truth, strict=True)])),
                ("named_wrong", np.mean([d.kind is Kind.NAME and b != t for d, b, t in zip(decisions, best, truth, strict=True)])),
                ("known_macro_f1", known_figures(known_labels, known_truth, known_pred)["macro_f1"]),
            ):  # fmt: skip
                row.setdefault(key, []).append(float(value))
            if added:
                half = OpenWorld.for_card(
                    card, _grown(memory, unknown, strangers, order, added, k), min_examples=1
                )
                named = [name for name in map(name_given, decide_all(half, still)) if name is not None]
                for key, value in (
                    ("strangers_named_before", before),
                    ("strangers_named", len(named) / max(1, len(still))),
                    (
                        "strangers_named_as_added",
                        sum(c in added for c in named) / max(1, len(still)),
                    ),
                ):
                    row.setdefault(key, []).append(float(value))
    return {
        "characters": usable,
        "held_out_per_character": {c: int(len(rows_of[c]) - largest) for c in usable},
        "draws": draws,
        "by_shots": {str(k): {key: float(np.mean(v)) for key, v in figures[k].items()} for k in shots},
    }


def _grown(
    memory: CharacterMemory,
    unknown: Pictures,
    strangers: Answered,
    order: dict[str, np.ndarray],
    characters: list[str],
    k: int,
) -> CharacterMemory:
    """A copy of the memory with the first k pictures (in `order`) of each of `characters` added."""
    grown = CharacterMemory.from_bytes(memory.to_bytes())
    grown.add(
        MemoryEntry(f"few-shot:{unknown.names[i]}", c, "eval", strangers.first.vectors[i])
        for c in characters
        for i in order[c][:k]
    )
    return grown


def _best_among(world: OpenWorld, embeddings: np.ndarray, characters: list[str]) -> list[str]:
    names, protos = world.memory.prototypes()
    cols = [names.index(c) for c in characters]
    sims = embeddings @ protos[cols].T
    return [characters[j] for j in sims.argmax(1)]
