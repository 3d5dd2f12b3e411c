"""What one registered model version is, as the registry reports it (`VersionEntry`), what a
promotion answers (`PromotionResult`), and the check every version passes before a reader may rely
on it (`validate_folder`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from models import colour
from models.card import FIRST_INT8_NAME, FIRST_NAME, INT8_NAME, ONNX_NAME, ModelCard, read_card
from models.errors import ModelLoadError
from models.memory import MEMORY_NAME, CharacterMemory
from models.runtime import check_signature, open_session

# Statuses as the catalog's ModelStatus spells them (models may import catalog, but the registry
# must also work for a bot that never touches the schema module's SQLAlchemy side).
ACTIVE, CANDIDATE, RETIRED, REFUSED, BROKEN = "active", "candidate", "retired", "refused", "broken"


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    previous: str | None  # the version active before the call


@dataclass(frozen=True)
class VersionEntry:
    """One folder of the registry with its status; `card` is None (and `problem` says why) when the
    folder cannot be read."""

    version: str
    status: str
    path: Path
    card: ModelCard | None
    problem: str | None = None
    promoted_at: datetime | None = None
    note: str | None = None  # why a candidate was refused

    def __getattr__(self, name: str) -> Any:
        # An entry reads like its card (entry.metrics, entry.labels, ...) when the card is readable.
        card = self.__dict__.get("card")
        if card is not None and name in type(card).model_fields:
            return getattr(card, name)
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        card = self.card.model_dump(mode="json", by_alias=True) if self.card is not None else {}
        return {
            **card,
            "version": self.version,
            "status": self.status,
            "path": str(self.path),
            "problem": self.problem,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "note": self.note,
        }


def _runs(path: Path, card: ModelCard, *, first: bool = False) -> np.ndarray:
    """The graph loads, has the card's signature and runs on one image; its embedding (`first`:
    member 1's graph)."""
    session = open_session(path, providers=["CPUExecutionProvider"], intra_op_threads=1)
    check_signature(session, card, path.parent, first=first)
    probe = np.zeros((1, card.image_size, card.image_size, 3), dtype=np.uint8)
    try:
        logits, embedding = session.run(None, {session.get_inputs()[0].name: probe})
    except Exception as exc:  # onnxruntime's errors are untyped
        raise ModelLoadError(f"{path} loads but does not run: {exc}") from exc
    if logits.shape != (1, len(card.labels)) or embedding.ndim != 2 or embedding.shape[0] != 1:
        raise ModelLoadError(
            f"{path} returned logits {logits.shape} and embedding {embedding.shape} "
            f"for one image; the card has {len(card.labels)} labels"
        )
    return embedding


def validate_folder(folder: Path, *, expect_version: str | None = None) -> ModelCard:
    """Everything a reader will rely on: the card parses and matches the folder and the ONNX bytes,
    the graph (and the int8 graph, when the card lists one) loads in onnxruntime, takes the card's
    input and runs on one image, and a card with open-set thresholds has its character memory
    beside it."""
    card = read_card(folder, expect_version=expect_version, verify_hash=True)
    graphs = [ONNX_NAME] if card.int8 is None else [ONNX_NAME, INT8_NAME]
    for name in graphs:
        embedding = _runs(folder / name, card)
    first = card.first_look
    if first is not None:
        for name in [FIRST_NAME] if first.int8 is None else [FIRST_NAME, FIRST_INT8_NAME]:
            own = colour.width(_runs(folder / name, card, first=True).shape[1], first.open_set.colour)
            if own != first.width:
                raise ModelLoadError(
                    f"{folder / name} gives {own}-wide vectors, the card's first-look columns {first.width}"
                )
    if card.open_set is not None:
        memory = CharacterMemory.load(folder / MEMORY_NAME)
        wide = colour.width(embedding.shape[1], card.open_set.colour)
        if memory.dim != wide:
            raise ModelLoadError(
                f"{folder / MEMORY_NAME} holds {memory.dim}-wide embeddings, the graph and the card "
                f"give {wide}"
            )
        gate = card.open_set.gate
        if gate is not None and gate[1] > embedding.shape[1]:
            raise ModelLoadError(
                f"{folder}: the card's gate columns {gate[0]}-{gate[1]} lie past the graph's "
                f"{embedding.shape[1]}-wide embedding"
            )
    return card
