"""The head, the character memory and the fitted thresholds answering faces together: `OpenWorld`
keeps a snapshot of the memory's prototypes and decides a batch of faces by `models.openset`'s rule,
with a second look near a bar.

A version of several members (`models.card.FirstLook`) answers in turn: member 1 alone decides
every face by its own bars, reading its own columns of the memory's vectors (`project`); a face
it lands near one of them is decided by every member, as a version of one answers. Runs of one
recipe differ in which strangers they take for a trained character, so the members together name
fewer of them; near member 1's bars is where that matters (docs/open-world.md, "Ensembles as an
option")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from models.openset import Kind, Looks, OpenSetThresholds, Seen, decide, gated

if TYPE_CHECKING:
    from models.card import ModelCard
    from models.memory import CharacterMemory

# [start, end) columns of the memory's vector and the factor they are scaled by
Columns = list[tuple[int, int, float]]


def member_columns(members: int, last: int, middle: int, colours: int) -> Columns:
    """Where member 1's vector sits in the memory's vector of `members` nets joined as
    `trainer.ensemble` joins them (`last` and `middle` feature columns per member, `colours`
    histogram columns after them, 0 without): its last features first, its middle features after
    every member's last ones, the colours at the end; each member part scaled by sqrt(N), which the
    ensemble divided it by."""
    factor = members**0.5
    columns = [(0, last, factor)]
    if middle:
        columns.append((members * last, members * last + middle, factor))
    if colours:
        start = members * (last + middle)
        columns.append((start, start + colours, 1.0))
    return columns


class FirstLookRule(Protocol):
    """What a world needs of a first look: the card's `FirstLook`, or the trainer's before export."""

    members: int
    open_set: OpenSetThresholds
    columns: Columns
    margins: tuple[float, float]


def project(vectors: np.ndarray, columns: Columns) -> np.ndarray:
    """Rows of the memory's vectors as one member sees them: its columns, scaled, at unit length
    (exact for an ensemble's vectors, `trainer.ensemble`; float16 rounding aside)."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    out = np.concatenate([rows[:, start:end] * factor for start, end, factor in columns], axis=1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Named:
    """A character an answer offers: calibrated confidence, and how it is known (None: trained;
    N: from N examples in the memory, no retrain)."""

    label: str
    probability: float
    examples: int | None = None


@dataclass(frozen=True)
class FaceDecision:
    kind: Kind
    candidates: tuple[Named, ...]  # best first
    similarity: float
    evidence: float
    looks: int = 1  # 2: decided on the face and its mirror image averaged
    members: int = 1  # how many members' looks decided it (a version's members, or its member 1)


# Rows of a batch -> those faces' two looks averaged.
SecondLook = Callable[[list[int]], Looks]
# Rows of a batch -> every member's decisions for those faces.
EveryMember = Callable[[list[int]], list[FaceDecision]]


@dataclass(frozen=True)
class _Snapshot:
    names: list[str]
    prototypes: np.ndarray  # (characters, dim)
    gate_prototypes: np.ndarray  # the same without the gate's columns (the same array without a gate)
    faces: np.ndarray  # faces per character in the memory
    trained: np.ndarray  # bool: the head was trained on it
    head_index: np.ndarray  # the head's column for each character, -1 when it has none


class OpenWorld:
    """The trained head, the character memory and the fitted thresholds, answering faces together.

    Characters are the head's labels plus every memory character with at least `min_examples`
    faces. A snapshot of the memory's prototypes is taken by `refresh()` (after the memory changed);
    answers read whichever snapshot is current, so a refresh from another thread is safe.

    `first`: the version's first look (member 1's bars; `self.first` is its own world over the
    same memory). `columns`: this world reads these columns of the memory's vectors (`project`);
    `margins`: how near a bar a face is looked at again (the card's second look by default)."""

    def __init__(
        self,
        labels: list[str],
        thresholds: OpenSetThresholds,
        memory: CharacterMemory,
        *,
        first: FirstLookRule | None = None,
        columns: Columns | None = None,
        margins: tuple[float, float] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.thresholds = thresholds
        self.memory = memory
        self.columns = columns
        self._margins = margins
        self.members = first.members if first is not None else 1
        self.first = (
            None
            if first is None
            else OpenWorld(labels, first.open_set, memory, columns=first.columns, margins=first.margins)
        )
        self.revision = 0  # bumped by every refresh: answers cached before it are stale
        self._snapshot = self._take()

    @classmethod
    def for_card(
        cls, card: ModelCard, memory: CharacterMemory, *, min_examples: int | None = None
    ) -> OpenWorld:
        """The world a version's card describes, over `memory` (`min_examples`: instead of the card's)."""
        assert card.open_set is not None
        world = cls(card.labels, card.open_set, memory, first=card.first_look)
        if min_examples is not None:
            world.set_min_examples(min_examples)
        return world

    @property
    def margins(self) -> tuple[float, float]:
        """(evidence, confidence): how near a bar a face is looked at again."""
        if self._margins is not None:
            return self._margins
        return self.thresholds.second_look or (0.0, 0.0)

    def refresh(self) -> None:
        if self.first is not None:
            self.first.refresh()
        self._snapshot = self._take()
        self.revision += 1

    def set_min_examples(self, count: int) -> None:
        """A deployment's own rule for naming a character known from examples only."""
        changed = False
        for world in (self, self.first) if self.first is not None else (self,):
            if count != world.thresholds.min_examples:
                world.thresholds = world.thresholds.model_copy(update={"min_examples": max(1, count)})
                changed = True
        if changed:
            self.refresh()  # member 1's world too

    def deciding(self, decision: FaceDecision) -> OpenWorld:
        """The world whose bars decided `decision`: member 1's when it decided alone."""
        return self.first if self.first is not None and decision.members == 1 else self

    def _take(self) -> _Snapshot:
        names, protos = self.memory.prototypes()
        counts = self.memory.counts()
        column = {label: i for i, label in enumerate(self.labels)}
        keep = [
            j
            for j, name in enumerate(names)
            if name in column or counts[name] >= self.thresholds.min_examples
        ]
        kept = protos[keep] if keep else np.zeros((0, self.memory.dim), dtype=np.float32)
        if self.columns is not None:
            kept = project(kept, self.columns)
        return _Snapshot(
            names=[names[j] for j in keep],
            prototypes=kept,
            gate_prototypes=gated(kept, self.thresholds.gate),
            faces=np.array([counts[names[j]] for j in keep], dtype=np.int64),
            trained=np.array([names[j] in column for j in keep], dtype=bool),
            head_index=np.array([column.get(names[j], -1) for j in keep], dtype=np.int64),
        )

    def characters(self) -> dict[str, int | None]:
        """Every character an answer may name: None for trained ones, else its number of faces."""
        snap = self._snapshot
        return {
            name: None if trained else int(n)
            for name, trained, n in zip(snap.names, snap.trained, snap.faces, strict=True)
        }

    def decide(
        self,
        first: Looks,
        *,
        top_k: int = 3,
        seen: Seen = Seen.FACE,
        second: SecondLook | None = None,
    ) -> list[FaceDecision]:
        """One decision per row of first looks. When the card has a `second_look` and `second` is
        given, the rows whose first look lands near a bar are decided again on what `second`
        returns for them: both looks averaged."""
        decided = self._decide_rows(first, top_k, seen)
        out = [decision for decision, _ in decided]
        rows = [i for i, (_, near) in enumerate(decided) if near]
        if second is not None and rows:
            again = self._decide_rows(second(rows), top_k, seen)
            for row, (decision, _) in zip(rows, again, strict=True):
                out[row] = replace(decision, looks=2)
        return out

    def decide_in_turn(
        self, member: Looks, every_member: EveryMember, *, top_k: int = 3, seen: Seen = Seen.FACE
    ) -> list[FaceDecision]:
        """A version of several members: one decision per row of member 1's looks (its own
        vectors, `member`) by its own bars; the rows within its margins of one are decided by
        `every_member` (what `decide` gives on every member's looks)."""
        assert self.first is not None, "decide_in_turn needs a version with a first look"
        decided = self.first._decide_rows(member, top_k, seen)
        out = [decision for decision, _ in decided]
        rows = [i for i, (_, near) in enumerate(decided) if near]
        if rows:
            for row, decision in zip(rows, every_member(rows), strict=True):
                out[row] = replace(decision, members=self.members)
        return out

    def _decide_rows(self, looks: Looks, top_k: int, seen: Seen) -> list[tuple[FaceDecision, bool]]:
        snap = self._snapshot
        if not snap.names:
            return [(FaceDecision(Kind.STRANGER, (), -1.0, -1.0), False) for _ in range(len(looks.vectors))]
        vectors = np.asarray(looks.vectors, dtype=np.float32)
        similarity = vectors @ snap.prototypes.T
        gate = self.thresholds.gate
        gate_similarity = similarity if gate is None else gated(vectors, gate) @ snap.gate_prototypes.T
        probabilities = np.asarray(looks.probabilities, dtype=np.float64)
        out = []
        for i in range(len(similarity)):
            head = np.where(snap.trained, probabilities[i][np.maximum(snap.head_index, 0)], np.nan)
            decision = decide(
                similarity[i], snap.faces, self.thresholds, head=head, seen=seen,
                gate_similarity=gate_similarity[i], margins=self.margins,
                familiarity=float(looks.familiarity[i]),
            )  # fmt: skip
            candidates = tuple(
                Named(
                    snap.names[j],
                    float(decision.confidence[j]),
                    None if snap.trained[j] else int(snap.faces[j]),
                )
                for j in decision.order[: max(1, top_k)]
            )
            face = FaceDecision(decision.kind, candidates, decision.similarity, decision.evidence)
            out.append((face, decision.near))
        return out
