"""A set's pictures and how a model version answers them, for `namae eval` (`trainer.openeval`) and
its posts (`trainer.openeval_posts`): folders read into decoded pictures, the model's first look and
(for a card with a second look) both looks averaged, the decisions made as the answer path makes
them, and today's closed-set rule beside them.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from media.decode import DecodeLimits, ImageRejected
from media.faces import FaceFinder
from models.answer import FaceAnswer, answer_pixels
from models.classifier import Classifier
from models.open_world import FaceDecision, Named, OpenWorld
from models.openset import Kind, Looks, both_looks
from models.preprocess import mirrored
from trainer.folder_source import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

NOT_NAMED = "(not named)"


@dataclass
class Pictures:
    """Decoded pictures of one set, with their labels (None for not-characters) and file names."""

    images: list[np.ndarray] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: int = 0


SKIPS_NAMED = 3  # unreadable pictures named one by one; the rest are counted


def read_folder(root: Path, limits: DecodeLimits, *, per_character: bool) -> Pictures:
    """`root/<character>/*` (or every picture under `root`), decoded as the bot decodes a post
    (`limits`: big JPEGs at a reduced scale); unreadable files are counted, not fatal."""
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
                out.images.append(limits.decode_file(path).rgb)
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
    """A set's face crops through the model: the first look (`models.openset.Looks`), for a
    mirrored card both looks averaged (what a second look decides on), and for a version of several
    members member 1's own look (what it decides every face on first)."""

    first: Looks
    both: Looks | None = None
    member: Looks | None = None

    def __len__(self) -> int:
        return len(self.first.vectors)

    def rows(self, rows: np.ndarray) -> Answered:
        both = None if self.both is None else self.both.rows(rows)
        member = None if self.member is None else self.member.rows(rows)
        return Answered(self.first.rows(rows), both, member)


def run_model(classifier: Classifier, pictures: Pictures) -> Answered:
    """Every picture as one face crop, in batches (what `models.answer` does for a crop); its
    mirror image too when the card has a `second_look` (the answer path looks again near a bar),
    and through member 1's graph for a version of several members."""
    first = classifier.infer(pictures.images)
    both = None
    if classifier.card.open_set is not None and classifier.card.open_set.second_look is not None:
        both = both_looks(first, classifier.infer(mirrored(pictures.images)))
    member = classifier.first.infer(pictures.images) if classifier.first is not None else None
    return Answered(first, both, member)


def confidence(face: FaceAnswer) -> tuple[bool, float]:
    """How sure an answer is, to compare faces: named before not named, then by probability."""
    return (face.kind is Kind.NAME, face.best.probability if face.best else 0.0)


def most_confident(faces: list[FaceAnswer]) -> FaceAnswer:
    """A post's answer: its most confident named face (a post shows the character it is filed under)."""
    return max(faces, key=confidence)


def answer_as_posted(
    classifier: Classifier, pictures: Pictures, finder: FaceFinder | None
) -> list[tuple[FaceDecision, bool]]:
    """Pictures as the bot sees them, through the one answer path (`models.answer.answer_pixels`:
    faces found and cropped, or the whole picture): per picture, its most confident face's decision,
    and whether a face was found at all."""
    out = []
    for rgb in pictures.images:
        face = most_confident(answer_pixels(rgb, model=classifier, finder=finder, top_k=3))
        named = tuple(Named(c.label, c.probability, c.examples) for c in face.candidates)
        # without a finder the picture is the face crop (what `answer_pixels` assumes then)
        found = finder is None or face.box is not None
        out.append((FaceDecision(face.kind, named, -1.0, -1.0), found))
    return out


def today(classifier: Classifier, answered: Answered) -> tuple[np.ndarray, np.ndarray]:
    """Today's closed-set rule: (named, best label index) from the head and the card's threshold."""
    probabilities = answered.first.probabilities
    best = probabilities.argmax(1) if len(probabilities) else np.zeros(0, dtype=int)
    limits = np.array([classifier.card.thresholds.for_label(classifier.labels[i]) for i in best])
    named = probabilities.max(1) >= limits if len(best) else np.zeros(0, dtype=bool)
    return named, best


def decide_all(world: OpenWorld, answered: Answered, *, in_turn: bool = True) -> list[FaceDecision]:
    """Every face crop's decision, as the answer path makes it (a second look near a bar; member 1
    first for a version of several members, unless `in_turn` is False: every member on every face)."""
    both = answered.both

    def every_member(rows: list[int]) -> list[FaceDecision]:
        picked = np.asarray(rows, dtype=int)
        second = None if both is None else (lambda again: both.rows(picked[again]))
        return world.decide(answered.first.rows(picked), second=second)

    if in_turn and world.first is not None and answered.member is not None:
        return world.decide_in_turn(answered.member, every_member)
    return every_member(list(range(len(answered))))


def every_member_share(world: OpenWorld, decisions: list[FaceDecision]) -> float:
    """The share of faces decided on the version's whole graph: those near member 1's bars for a
    version of several members (what member 1 looking first saves), every face otherwise."""
    if world.first is None:
        return 1.0
    return sum(d.members > 1 for d in decisions) / max(1, len(decisions))


def second_looks(decisions: list[FaceDecision]) -> float:
    """The share of faces decided on two looks (what the second look costs in model time)."""
    return sum(d.looks == 2 for d in decisions) / max(1, len(decisions))


def kinds(decisions: list[FaceDecision]) -> dict[str, float]:
    n = max(1, len(decisions))
    return {kind.value: sum(d.kind is kind for d in decisions) / n for kind in Kind}


def name_given(decision: FaceDecision) -> str | None:
    """The character an answer names; None for every other kind of answer."""
    return decision.candidates[0].label if decision.kind is Kind.NAME else None


def mistaken_for(truth: list[str], decisions: list[FaceDecision], most: int = 3) -> dict[str, dict[str, Any]]:
    """Per character the model does not know: its pictures, the share named as someone, and the
    `most` names it was given most often (each a share of its pictures), most first. A stranger
    named often, and mostly as one character, is the one to add to the catalog."""
    given: dict[str, list[str | None]] = defaultdict(list)
    for character, decision in zip(truth, decisions, strict=True):
        given[character].append(name_given(decision))
    by: dict[str, dict[str, Any]] = {}
    for character in sorted(given):
        pictures = len(given[character])
        names = Counter(name for name in given[character] if name is not None)
        by[character] = {
            "pictures": pictures,
            "named": names.total() / pictures,
            "as": {name: n / pictures for name, n in names.most_common(most)},
        }
    return by


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
