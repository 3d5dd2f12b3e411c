"""The head, the character memory and the fitted thresholds answering faces together: `OpenWorld`
keeps a snapshot of the memory's prototypes and decides a batch of faces by `models.openset`'s rule,
with a second look near a bar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from models.openset import Kind, Looks, OpenSetThresholds, Seen, decide, gated

if TYPE_CHECKING:
    from models.memory import CharacterMemory


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


# Rows of a batch -> those faces' two looks averaged.
SecondLook = Callable[[list[int]], Looks]


def second_look_of(both: Looks) -> SecondLook:
    """The second look of a batch whose two looks were all made beforehand (`both_looks`' output),
    as `OpenWorld.decide` asks for it."""
    return both.rows


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
    answers read whichever snapshot is current, so a refresh from another thread is safe."""

    def __init__(self, labels: list[str], thresholds: OpenSetThresholds, memory: CharacterMemory) -> None:
        self.labels = list(labels)
        self.thresholds = thresholds
        self.memory = memory
        self.revision = 0  # bumped by every refresh: answers cached before it are stale
        self._snapshot = self._take()

    def refresh(self) -> None:
        self._snapshot = self._take()
        self.revision += 1

    def set_min_examples(self, count: int) -> None:
        """A deployment's own rule for naming a character known from examples only."""
        if count != self.thresholds.min_examples:
            self.thresholds = self.thresholds.model_copy(update={"min_examples": max(1, count)})
            self.refresh()

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
                gate_similarity=gate_similarity[i], margins=self.thresholds.second_look or (0.0, 0.0),
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
