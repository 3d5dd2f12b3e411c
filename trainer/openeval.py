"""`namae eval`: a model version in the open world, on folders of pictures.

    known/<character>/*      characters the version was trained on (or has in its memory)
    unknown/<character>/*    characters it does not know: strangers first, then the few-shot curve
    not-characters/**        pictures with no character in them

Every picture is answered by the product's rule (`models.openset.OpenWorld`: the trained head, the
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

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from catalog.settings import ImageLimits
from media.decode import ImageRejected, decode_image
from media.faces import FaceFinder
from models.answer import answer_pixels
from models.classifier import Classifier
from models.memory import CharacterMemory, MemoryEntry
from models.openset import FaceDecision, Kind, Named, OpenWorld
from trainer import TrainingError
from trainer.folder_source import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SHOTS = (1, 5, 10, 20)
NOT_NAMED = "(not named)"


@dataclass
class Pictures:
    """Decoded pictures of one set, with their labels (None for not-characters) and file names."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: int = 0


SKIPS_NAMED = 3  # unreadable pictures named one by one; the rest are counted


def read_folder(root: Path, limits: ImageLimits, *, per_character: bool) -> Pictures:
    """`root/<character>/*` (or every picture under `root`); unreadable files are counted, not fatal."""
    out = Pictures()
    if per_character:
        groups = [(d.name, d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    else:
        groups = [(None, root)]
    for label, folder in groups:
        for path in sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ):
            try:
                out.images.append(decode_image(path.read_bytes(), limits).rgb)
            except (OSError, ImageRejected) as exc:
                out.skipped += 1
                if out.skipped <= SKIPS_NAMED:
                    log.warning("skipping %s: %s", path, exc)
                continue
            out.labels.append(label)
            out.names.append(str(path.relative_to(root)))
    if out.skipped > SKIPS_NAMED:  # one line for the rest, not a screenful
        log.warning("skipped %d pictures in %s in all", out.skipped, root)
    return out


@dataclass
class Answered:
    """A set's pictures through the model: calibrated head probabilities and embeddings."""

    probabilities: np.ndarray
    embeddings: np.ndarray
    face_found: np.ndarray  # bool per picture


def run_model(classifier: Classifier, pictures: Pictures) -> Answered:
    """Every picture as one face crop, in batches (what `models.answer` does for a crop)."""
    probabilities, embeddings = classifier.infer(pictures.images)
    return Answered(probabilities, embeddings, np.ones(len(pictures.images), dtype=bool))


def answer_as_posted(
    classifier: Classifier, pictures: Pictures, finder: FaceFinder | None
) -> list[tuple[FaceDecision, bool]]:
    """Pictures as the bot sees them, through the one answer path (`models.answer.answer_pixels`:
    faces found and cropped, or the whole picture): per picture, its most confident face's decision,
    and whether a face was found at all."""
    out = []
    for rgb in pictures.images:
        faces = answer_pixels(rgb, model=classifier, finder=finder, top_k=3)
        face = max(faces, key=lambda f: (f.kind is Kind.NAME, f.best.probability if f.best else 0.0))
        named = tuple(Named(c.label, c.probability, c.examples) for c in face.candidates)
        # without a finder the picture is the face crop (what `answer_pixels` assumes then)
        found = finder is None or face.box is not None
        out.append((FaceDecision(face.kind, named, -1.0, -1.0), found))
    return out


def today(classifier: Classifier, answered: Answered) -> tuple[np.ndarray, np.ndarray]:
    """Today's closed-set rule: (named, best label index) from the head and the card's threshold."""
    best = answered.probabilities.argmax(1) if len(answered.probabilities) else np.zeros(0, dtype=int)
    limits = np.array([classifier.card.thresholds.for_label(classifier.labels[i]) for i in best])
    named = answered.probabilities.max(1) >= limits if len(best) else np.zeros(0, dtype=bool)
    return named, best


def decide_all(world: OpenWorld, answered: Answered) -> list[FaceDecision]:
    out: list[FaceDecision] = []
    for found in (True, False):
        rows = np.nonzero(answered.face_found == found)[0]
        if len(rows):
            decisions = world.decide(
                answered.embeddings[rows], answered.probabilities[rows], face_found=found
            )
            out.extend(zip(rows.tolist(), decisions, strict=True))  # type: ignore[arg-type]
    return [d for _, d in sorted(out, key=lambda pair: pair[0])]  # type: ignore[index]


def kinds(decisions: list[FaceDecision]) -> dict[str, float]:
    n = max(1, len(decisions))
    return {kind.value: sum(d.kind is kind for d in decisions) / n for kind in Kind}


def known_figures(labels: list[str], truth: list[str], predicted: list[str | None]) -> dict[str, Any]:
    named = np.array([p is not None for p in predicted])
    right = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    shown = [p if p is not None else NOT_NAMED for p in predicted]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, shown, labels=labels, zero_division=0
    )
    return {
        "coverage": float(named.mean()) if len(named) else 0.0,
        "precision": float(right[named].mean()) if named.any() else 0.0,
        "macro_f1": float(np.mean(f1)) if len(f1) else 0.0,
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
    }


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
    world = OpenWorld(classifier.labels, card.open_set, memory)
    labels = sorted(set(known.labels) - {None})  # type: ignore[arg-type]
    progress(f"answering {len(known.images)} pictures of {len(labels)} known characters")
    answered = run_model(classifier, known)
    decisions = decide_all(world, answered)
    truth = [str(label) for label in known.labels]
    new_pred = [d.candidates[0].label if d.kind is Kind.NAME else None for d in decisions]
    named_today, best_today = today(classifier, answered)
    old_pred = [classifier.labels[b] if n else None for n, b in zip(named_today, best_today, strict=True)]
    result: dict[str, Any] = {
        "version": card.version,
        "graph": classifier.graph,
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
            "pair_holds_truth": _pair_truth(decisions, truth),
        },
        "curve": _coverage_curve(decisions, truth, answered, classifier, card.open_set.known),
    }
    result["_plots"] = {"known_truth": truth, "known_pred": new_pred, "decisions": decisions}
    known_evidence = np.array([d.evidence for d in decisions])
    known_today = answered.probabilities.max(1)
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
            "auroc": _auroc(known_evidence, np.array([d.evidence for d in stranger_decisions])),
            "auroc_today": _auroc(known_today, strangers.probabilities.max(1)),
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
            "auroc": _auroc(known_evidence, np.array([d.evidence for d in decide_all(world, others)])),
            "auroc_today": _auroc(known_today, others.probabilities.max(1)),
        }
    return result


def _pair_truth(decisions: list[FaceDecision], truth: list[str]) -> float | None:
    pairs = [(d, t) for d, t in zip(decisions, truth, strict=True) if d.kind is Kind.PAIR]
    if not pairs:
        return None
    return sum(t in {c.label for c in d.candidates[:2]} for d, t in pairs) / len(pairs)


def _coverage_curve(
    decisions: list[FaceDecision], truth: list[str], answered: Answered, classifier: Classifier, known: float
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
    gate = np.array([d.evidence >= known for d in decisions], dtype=bool)
    cov, prec = curve(confidence, right, gate)
    best = answered.probabilities.argmax(1) if len(truth) else np.zeros(0, dtype=int)
    right_today = np.array([classifier.labels[b] == t for b, t in zip(best, truth, strict=True)])
    cov_t, prec_t = curve(answered.probabilities.max(1), right_today, np.ones(len(truth), dtype=bool))
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
    thresholds = card.open_set.model_copy(update={"min_examples": 1})
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
        sub = _rows(strangers, held)
        added = [str(c) for c in halves.permutation(usable)[: len(usable) // 2]]
        # the other half stays strangers: what the memory as it was names of them, once per draw
        still = _rows(
            strangers, np.array([i for i, c in enumerate(unknown.labels) if c not in added], dtype=int)
        )
        before = (
            kinds(decide_all(OpenWorld(classifier.labels, thresholds, memory), still))[Kind.NAME.value]
            if added
            else 0.0
        )
        for k in shots:
            world = OpenWorld(
                classifier.labels, thresholds, _grown(memory, unknown, strangers, order, usable, k)
            )
            decisions = decide_all(world, sub)
            best = [d.candidates[0].label for d in decisions]
            new_only = _best_among(world, strangers.embeddings[held], usable)
            known_decisions = decide_all(world, known_answered)
            known_pred = [d.candidates[0].label if d.kind is Kind.NAME else None for d in known_decisions]
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
                half = OpenWorld(
                    classifier.labels, thresholds, _grown(memory, unknown, strangers, order, added, k)
                )
                named = [d.candidates[0].label for d in decide_all(half, still) if d.kind is Kind.NAME]
                for key, value in (
                    ("strangers_named_before", before),
                    ("strangers_named", len(named) / max(1, len(still.face_found))),
                    (
                        "strangers_named_as_added",
                        sum(c in added for c in named) / max(1, len(still.face_found)),
                    ),
                ):
                    row.setdefault(key, []).append(float(value))
    return {
        "characters": usable,
        "held_out_per_character": {c: int(len(rows_of[c]) - largest) for c in usable},
        "draws": draws,
        "by_shots": {str(k): {key: float(np.mean(v)) for key, v in figures[k].items()} for k in shots},
    }


def _rows(answered: Answered, rows: np.ndarray) -> Answered:
    return Answered(answered.probabilities[rows], answered.embeddings[rows], np.ones(len(rows), bool))


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
        MemoryEntry(f"few-shot:{unknown.names[i]}", c, "eval", strangers.embeddings[i])
        for c in characters
        for i in order[c][:k]
    )
    return grown


def _best_among(world: OpenWorld, embeddings: np.ndarray, characters: list[str]) -> list[str]:
    names, protos = world.memory.prototypes()
    cols = [names.index(c) for c in characters]
    sims = embeddings @ protos[cols].T
    return [characters[j] for j in sims.argmax(1)]
