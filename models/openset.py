"""The open-set decision: from a face's embedding and the character memory to one answer kind.

    similarity  s_c = cos(embedding, prototype_c)           prototype: mean of c's faces, normalized
    evidence    a_c = s_c + offset(n_c)                      n_c: how many faces of c the memory holds
    confidence  p   = softmax(sharpness * a)                 over every character that may be named,
                      averaged with the head's probability for the characters it was trained on
    order       by the same, the head's part times the memory's share on trained characters
    kind        "not a character" if max s < not_character, or no face was found and a_best < no_face
                "a character I don't know" if a_best < known
                a name if p_best >= name (a trained one: "one of these two" instead when a
                  character known from examples has confidence >= EXAMPLE_RIVAL; one known from
                  examples: never from a picture's regions, no face found)
                "one of these two" if p_best + p_second >= pair
                else "a character I don't know"

A prototype of n faces sits farther from a new face of its character than one of hundreds: the
mean of few faces is noisier. `offset(n)` is what that costs on held-out faces, measured when the
thresholds are fitted, so a character known from five examples competes fairly with one trained on
five hundred. The head's calibrated probabilities stay beside the memory's: for a character the
head was trained on, the confidence is the mean of the two (the order of the candidates scales the
head's part by the memory's share on trained characters, see `rank`), and its name needs the head
to agree, otherwise the answer is "one of these two" (the head's best and the memory's).

When the card names a `gate` (columns of the vector: the net's middle features, see
`trainer.backbones.Classifier.features_and_embedding`), the two bars that decide whether a face is
anyone at all ("not a character", "a character I don't know") read the cosine of the vectors
without those columns, with offsets of their own, and the confidence and the order read the whole
vector: the middle features tell characters apart better, and make every face look a little like
every character.

When the card has a `familiarity` (centre, scale), the evidence of every character the head was
trained on gains (m - centre) * scale, m the head's largest raw logit for the face: how familiar the
face is to the head as a whole (Vaze et al. 2022, "a good closed-set classifier is all you need":
the maximum logit keeps the feature's magnitude, which a unit vector and a softmax both drop). A
stranger that merely resembles a trained character reaches its cosine with a weaker response; a
character known from examples keeps its evidence as it is, since the head never saw it.

When the card has a `second_look`, the bars were fitted on the held-out faces' two looks averaged
(the face and its mirror image: probabilities and vectors), which names fewer strangers at the same
coverage; the answer path takes the second look only for a face whose first one lands within the
card's margins of a bar (`Decision.near`): what a second look moved nine held-out faces in ten by,
so elsewhere the mean of two looks answers as the first did. The memory keeps one look per face.

Every number here is fitted on held-out data by `trainer.openset` and written to the model card
(`OpenSetThresholds`); a card without them answers as before (the head and its threshold alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

# A trained character the head and the memory agree on is still "one of these two" when a character
# known from examples holds this much of the memory's confidence. Eight characters of another
# franchise added from 20 faces each to the dev models: their posts named as a trained look-alike
# 19.6% -> 15.7% and 17.4% -> 12.2% (0.2: 11.7% and 8.3%), known macro-F1 0.45 and 0.54 points lower
# (0.2: 0.8 and 1.2 points), docs/open-world.md, "Characters known from examples".
EXAMPLE_RIVAL = 0.25


class Kind(StrEnum):
    """What the bot says about one face."""

    NAME = "name"  # a character, named with a calibrated confidence
    UNKNOWN = "unknown"  # not sure who this is (the head alone, or below a guild's own threshold)
    PAIR = "pair"  # one of these two
    STRANGER = "stranger"  # a character I don't know
    NOT_CHARACTER = "not_character"  # no character here (not a drawing, no face)


class Seen(StrEnum):
    """What the looks of a face show, as the face finder had it."""

    FACE = "face"  # a face the finder found, or a face crop handed over as it is
    WEAKER_BOX = "weaker_box"  # one of the finder's weaker boxes in a picture where it found no face
    REGIONS = "regions"  # a picture's regions: no face found, none of the weaker boxes named


class OpenSetThresholds(BaseModel):
    """What `trainer.openset` fitted on held-out faces, as the card keeps it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sharpness: float = Field(gt=0.0)  # softmax(sharpness * evidence) is calibrated on held-out faces
    name: float = Field(ge=0.0, le=1.0)  # confidence that names a character at the target precision
    pair: float = Field(ge=0.0, le=2.0)  # top-two confidence for "one of these two"
    known: float  # evidence below which a face is "a character I don't know"
    not_character: float  # similarity below which it is "not a character"
    # Evidence a picture where no face was found needs before it is read as a character at all
    # (at least `known`); None on cards fitted before it existed, which use `known`.
    no_face: float | None = None
    offsets: dict[int, float] = Field(default_factory=dict)  # faces in memory -> evidence offset
    min_examples: int = Field(default=5, ge=1)  # a memory-only character is named from this many faces
    target_precision: float = Field(default=0.98, gt=0.0, le=1.0)
    fitted_on: dict[str, int] = Field(default_factory=dict)  # what the thresholds were fitted on
    # Weight of the face's colour histogram in the memory's vector (`models.colour`); 0: the graph's
    # embedding alone (cards fitted before it existed).
    colour: float = Field(default=0.0, ge=0.0)
    # Columns [start, end) of the memory's vector the "known" and "not a character" bars leave out,
    # and the evidence offsets of the vector without them; None: the whole vector for every bar.
    gate: tuple[int, int] | None = None
    gate_offsets: dict[int, float] = Field(default_factory=dict)
    # (evidence, confidence): the bars were fitted on the mean of each held-out face and its mirror
    # image, and a face whose first look lands within these of one is looked at again mirrored
    # (None: one look, cards before it).
    second_look: tuple[float, float] | None = None
    # (centre, scale): a trained character's evidence gains (the head's largest logit - centre) *
    # scale (None: cards before it, and NAMAE_MEMORY__FAMILIARITY 0).
    familiarity: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _gate_is_a_range(self) -> OpenSetThresholds:
        if self.gate is not None and not 0 <= self.gate[0] < self.gate[1]:
            raise ValueError(f"gate columns {self.gate} are not a range [start, end)")
        if self.second_look is not None and min(self.second_look) < 0.0:
            raise ValueError(f"second-look margins {self.second_look} must not be negative")
        if self.familiarity is not None and self.familiarity[1] < 0.0:
            raise ValueError(f"familiarity scale {self.familiarity[1]} must not be negative")
        return self

    def bonus(self, largest_logit: np.ndarray | float | None) -> np.ndarray:
        """What the head's largest logit adds to a trained character's evidence (0 without)."""
        return familiarity_bonus(self.familiarity, largest_logit)

    def offset(self, faces: np.ndarray, *, gate: bool = False) -> np.ndarray:
        """The evidence offset for characters with `faces` examples (interpolated; 0 past the table);
        `gate`: of the vector without the gate's columns (the whole vector's without a gate)."""
        table = self.gate_offsets if gate and self.gate is not None else self.offsets
        if not table:
            return np.zeros(len(faces), dtype=np.float32)
        ns = np.array(sorted(table), dtype=np.float64)
        values = np.array([table[int(n)] for n in ns], dtype=np.float64)
        out = np.interp(np.asarray(faces, dtype=np.float64), ns, values, right=0.0)
        return out.astype(np.float32)


def familiarity_bonus(
    familiarity: tuple[float, float] | None, largest_logit: np.ndarray | float | None
) -> np.ndarray:
    """(largest logit - centre) * scale, the evidence a trained character gains (0 without either)."""
    if familiarity is None or largest_logit is None:
        return np.zeros(np.shape(largest_logit))
    centre, scale = familiarity
    return (np.asarray(largest_logit, dtype=np.float64) - centre) * scale


@dataclass(frozen=True)
class Decision:
    kind: Kind
    order: np.ndarray  # character indices, most likely first
    confidence: np.ndarray  # calibrated probability per character (same indexing as the input)
    similarity: float  # cosine to the best character's prototype (without the gate's columns)
    evidence: float  # the best character's count-corrected evidence (idem)
    near: bool = False  # within the margins of a bar: another look could change the kind


def softmax(x: np.ndarray, sharpness: float = 1.0) -> np.ndarray:
    """Row-wise softmax of sharpness * x in float64 (a temperature T is sharpness 1 / T)."""
    z = np.asarray(x, dtype=np.float64) * sharpness
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def gated(vectors: np.ndarray, gate: tuple[int, int] | None) -> np.ndarray:
    """The rows without the gate's columns, at the rows' own lengths (the vectors themselves without
    a gate): a unit row stays unit, and the mean of several faces' vectors (a picture's regions, an
    animation's frames) keeps the shorter length it has for the whole vector's cosine too."""
    if gate is None:
        return vectors
    rows = np.asarray(vectors, dtype=np.float32)
    out = rows.copy()
    out[..., gate[0] : gate[1]] = 0.0
    length = np.linalg.norm(rows, axis=-1, keepdims=True)
    return out * (length / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12))


class Looks(NamedTuple):
    """The model's outputs for a batch of faces: calibrated head probabilities (N, classes), the
    memory's unit vectors (N, D) and the head's largest raw logit per face (N,)."""

    probabilities: np.ndarray
    vectors: np.ndarray
    familiarity: np.ndarray

    def rows(self, rows: list[int] | np.ndarray) -> Looks:
        return Looks(self.probabilities[rows], self.vectors[rows], self.familiarity[rows])


def both_looks(first: Looks, mirror: Looks) -> Looks:
    """Faces' two looks (as seen, and mirrored) averaged: probabilities and familiarity as means,
    vectors as their sum at unit length."""
    joined = np.asarray(first.vectors, dtype=np.float32) + np.asarray(mirror.vectors, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(joined, axis=-1, keepdims=True), 1e-12)
    return Looks(
        (np.asarray(first.probabilities) + np.asarray(mirror.probabilities)) / 2,
        joined / norms,
        (np.asarray(first.familiarity) + np.asarray(mirror.familiarity)) / 2,
    )


def evidence(
    similarity: np.ndarray, faces: np.ndarray, thresholds: OpenSetThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """(count-corrected evidence, calibrated confidence) for a batch of similarity rows."""
    corrected = similarity + thresholds.offset(faces)[None, :]
    return corrected, softmax(corrected, thresholds.sharpness)


def combine(confidence: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """The memory's confidence, averaged with the head's calibrated probability for characters the
    head was trained on (`head[c]` NaN for the others, which keep the memory's alone). The head
    keeps a trained character's confidence when a new character from a few faces sits close by;
    the "name" bar is fitted on this."""
    if head is None:
        return confidence
    trained = ~np.isnan(head)
    return np.where(trained, (confidence + np.where(trained, head, 0.0)) / 2, confidence)


def rank(confidence: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """Which character is likeliest: as `combine`, with the head's part scaled by the memory's
    share on the characters the head was trained on. The head's probabilities are conditional on
    the face being one of them, and that share is the condition's probability; so a face the memory
    gives to a character added from examples is not pulled back to a trained one by a head that
    could not have named it. With no character from examples it orders as `combine` does.

    Only the order uses it: scaling the confidence itself moved known faces near a new character
    under the "name" bar, which was fitted without any. Dev set, 5 new characters from 5 faces
    each, 6- / 12-epoch model: top-1 among 20 characters 0.558 -> 0.670 / 0.467 -> 0.593; known
    macro-F1 lost 1.1 -> 1.2 / 10.9 -> 10.8 points with the order alone, 3.6 / 20.3 with the
    confidence scaled too."""
    if head is None:
        return confidence
    mass = np.where(np.isnan(head), 0.0, confidence).sum(axis=-1, keepdims=True)
    return combine(confidence, head * mass)


def _rival(confidence: np.ndarray, head: np.ndarray | None) -> int | None:
    """The likeliest character known from examples only, when its confidence reaches
    `EXAMPLE_RIVAL` (None without one)."""
    if head is None:
        return None
    examples = np.nonzero(np.isnan(head))[0]
    if not len(examples):
        return None
    rival = int(examples[np.argmax(confidence[examples])])
    return rival if confidence[rival] >= EXAMPLE_RIVAL else None


def decide(
    similarity: np.ndarray,
    faces: np.ndarray,
    thresholds: OpenSetThresholds,
    *,
    head: np.ndarray | None = None,
    seen: Seen = Seen.FACE,
    gate_similarity: np.ndarray | None = None,
    margins: tuple[float, float] = (0.0, 0.0),
    familiarity: float | None = None,
) -> Decision:
    """One face: `similarity` to each character's prototype, `faces` per character in the memory,
    `head` the head's calibrated probability per character (NaN where the head was not trained on
    it); `seen`: what the looks show (anything but a face found must pass the no-face bar, and a
    picture's regions are not named as a character known from examples only); `gate_similarity`:
    the same cosines without the card's gate columns (None: `similarity`); `margins`: (evidence,
    confidence) within which of a bar the decision is `near`; `familiarity`: the head's largest raw
    logit."""
    _, memory_confidence = evidence(similarity[None, :], faces, thresholds)
    if gate_similarity is None or thresholds.gate is None:
        gate_similarity = similarity
    corrected = gate_similarity + thresholds.offset(faces, gate=True)
    if head is not None:
        corrected = corrected + np.where(np.isnan(head), 0.0, thresholds.bonus(familiarity))
    confidence = combine(memory_confidence[0], head)
    order = np.argsort(-rank(memory_confidence[0], head), kind="stable")
    best = int(order[0])
    p1 = float(confidence[best])
    p2 = float(confidence[order[1]]) if len(order) > 1 else 0.0
    raw = float(gate_similarity.max())
    ev = float(corrected[best])
    head_best = None
    if head is not None and not np.isnan(head[best]):
        # a trained character: the head must prefer it too (a character known from examples only
        # is the memory's call)
        head_best = int(np.nanargmax(head))
    no_face_bar = (
        thresholds.known if thresholds.no_face is None else max(thresholds.known, thresholds.no_face)
    )
    face_found = seen is Seen.FACE
    if raw < thresholds.not_character or (not face_found and ev < no_face_bar):
        kind = Kind.NOT_CHARACTER
    elif ev < thresholds.known:
        kind = Kind.STRANGER
    elif p1 >= thresholds.name and (head_best is None or head_best == best):
        kind = Kind.NAME
        rival = _rival(confidence, head) if head_best is not None else None
        if rival is not None:
            # the head cannot vote against a character it never saw: when the memory gives one
            # known from examples a real share, the head's agreement settles nothing
            order = np.array([best, rival, *[i for i in order if i not in (best, rival)]])
            kind = Kind.PAIR
    elif head_best is not None and head_best != best and p1 >= thresholds.name:
        # the memory is sure, the head prefers another character: offer both
        order = np.array([best, head_best, *[i for i in order if i not in (best, head_best)]])
        kind = Kind.PAIR
    elif p1 + p2 >= thresholds.pair:
        kind = Kind.PAIR
    else:
        kind = Kind.STRANGER
    if kind is Kind.NAME and seen is Seen.REGIONS and head is not None and np.isnan(head[best]):
        # A trained character's evidence in a faceless picture is held down by the familiarity term
        # and the no-face bar fitted against it; one known from examples has neither. Seed-7 dev
        # model with eight New Game! characters added from 20 faces: 31 of 291 not-characters
        # (greyscale human faces) named as one of them from their regions, none with this; of the
        # 198 posts with no face, 7 right and 6 wrong names from the regions lost, the 32 right
        # names from the finder's weaker boxes kept (docs/face-finder.md, "A second chance").
        kind = Kind.STRANGER
    # near a bar: another look could move the face across it (see models.open_world.OpenWorld.decide)
    cosine, chance = margins
    gate_bars = [thresholds.known] if face_found else [thresholds.known, no_face_bar]
    at_gate = abs(raw - thresholds.not_character) < cosine or min(abs(ev - b) for b in gate_bars) < cosine
    past_gate = raw >= thresholds.not_character - cosine and ev >= max(gate_bars) - cosine
    naming = abs(p1 - thresholds.name) < chance or p1 - p2 < chance
    pairing = p1 < thresholds.name + chance and abs(p1 + p2 - thresholds.pair) < chance
    near = at_gate or (past_gate and (naming or pairing))
    return Decision(kind, order, confidence, float(gate_similarity[best]), ev, near)
