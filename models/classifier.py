"""The ONNX classifier: a registry version loaded into onnxruntime, RGB crops in, calibrated
probabilities (softmax of logits / the card's temperature) and L2-normalized embeddings out.

A version of several members also carries member 1's own graph (`ModelCard.first_look`), which
`Classifier.first` runs: the answer path asks it first, and the version's graph only for the faces
member 1 lands near one of its bars (`models.open_world.OpenWorld.decide_in_turn`).

`ModelWatcher` switches a running process to a newly active version. Turning a picture into an
answer (faces, frames, thresholds) is `models.answer`'s job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models import colour, preprocess
from models.card import VERSION_RE, ModelCard, read_card
from models.errors import ModelLoadError
from models.int8 import Graph, open_graph
from models.memory import MEMORY_NAME, CharacterMemory
from models.open_world import OpenWorld
from models.openset import Looks, softmax
from models.runtime import check_signature, session_provider

if TYPE_CHECKING:
    from models.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_BATCH = 32


@dataclass(frozen=True)
class Candidate:
    label: str
    probability: float
    examples: int | None = None  # None: the head was trained on it; N: known from N faces in memory


class GraphRunner:
    """One ONNX session and how its outputs become `Looks`: calibrated probabilities, the memory's
    vectors (the graph's embedding, with the face's colours when the card weighs them) and the
    head's largest raw logit. A version's graph, or member 1's (`Classifier.first`)."""

    def __init__(
        self,
        session: Any,
        *,
        classes: int,
        image_size: int,
        temperature: float,
        colour: float,
        width: int,
        batch_size: int,
    ) -> None:
        self.session = session
        self.classes = classes
        self.image_size = image_size
        self.temperature = temperature
        self.colour = colour
        self.width = width
        self.batch_size = batch_size
        self._input_name = session.get_inputs()[0].name

    def infer(self, images: list[np.ndarray]) -> Looks:
        if not images:
            return Looks(
                np.zeros((0, self.classes)), np.zeros((0, self.width), dtype=np.float32), np.zeros(0)
            )
        probabilities, embeddings, familiarity = [], [], []
        for start in range(0, len(images), self.batch_size):
            batch = preprocess.to_batch(images[start : start + self.batch_size], self.image_size)
            logits, embedding = self.session.run(list(preprocess.OUTPUT_NAMES), {self._input_name: batch})
            probabilities.append(softmax(logits, 1.0 / self.temperature))
            embeddings.append(colour.with_colour(embedding, batch, self.colour))
            familiarity.append(np.asarray(logits, dtype=np.float64).max(axis=1))
        return Looks(np.concatenate(probabilities), np.concatenate(embeddings), np.concatenate(familiarity))


class Classifier:
    def __init__(
        self,
        card: ModelCard,
        session: Any,
        *,
        path: Path,
        batch_size: int = DEFAULT_BATCH,
        graph: Graph = "float",
        first: Any = None,  # member 1's session, for a card with a first look
    ) -> None:
        self.card = card
        self.graph: Graph = graph
        self.session = session
        self.path = path
        self.batch_size = batch_size
        self.version: str = card.version
        self.labels: list[str] = list(card.labels)
        self.image_size: int = card.image_size
        self.threshold: float = card.thresholds.default
        self.provider: str = session_provider(session)
        # The memory's vector: the graph's embedding, with the face's colours when the card says so.
        self.colour: float = card.open_set.colour if card.open_set is not None else 0.0
        self.embedding_dim: int = colour.width(check_signature(session, card, path), self.colour)
        self._runner = GraphRunner(
            session, classes=len(self.labels), image_size=self.image_size, temperature=card.temperature,
            colour=self.colour, width=self.embedding_dim, batch_size=batch_size,
        )  # fmt: skip
        # The head, the character memory and the card's open-set thresholds answering together;
        # None for a version trained before the memory (the head and its threshold answer alone).
        self.world: OpenWorld | None = None
        if card.open_set is not None and (path / MEMORY_NAME).is_file():
            self.world = OpenWorld.for_card(card, CharacterMemory.load(path / MEMORY_NAME))
        # Member 1 alone, looking first (a version of several members with a memory; None otherwise).
        self.first: GraphRunner | None = None
        if first is not None and card.first_look is not None and self.world is not None:
            own = card.first_look
            check_signature(first, card, path, first=True)
            self.first = GraphRunner(
                first, classes=len(self.labels), image_size=self.image_size, temperature=own.temperature,
                colour=own.open_set.colour, width=own.width, batch_size=batch_size,
            )  # fmt: skip

    @classmethod
    def load(
        cls,
        version_dir: Path,
        *,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        int8: bool = True,
    ) -> Classifier:
        version_dir = Path(version_dir)
        # A registry folder must carry its own version; a copy elsewhere may have any name.
        expect = version_dir.name if VERSION_RE.match(version_dir.name) else None
        card = read_card(version_dir, expect_version=expect, verify_hash=True)
        session, graph = open_graph(
            version_dir, card, providers=providers, intra_op_threads=intra_op_threads, int8=int8
        )
        first = None
        if card.first_look is not None:
            first, _ = open_graph(
                version_dir,
                card,
                providers=providers,
                intra_op_threads=intra_op_threads,
                int8=int8,
                first=True,
            )
        classifier = cls(card, session, path=version_dir, batch_size=batch_size, graph=graph, first=first)
        log.info(
            "loaded model %s (%d labels, %dpx, %s graph) on %s", card.version, len(card.labels),
            card.image_size, graph, classifier.provider,
        )  # fmt: skip
        return classifier

    @classmethod
    def from_registry(cls, registry: Registry, **kw: Any) -> Classifier:
        """The active version (resolved once, so a concurrent promotion gives the old or the new)."""
        _, folder = registry.require_active()
        return cls.load(folder, **kw)

    # -- inference -----------------------------------------------------------------------------

    def infer(self, images: list[np.ndarray]) -> Looks:
        """Calibrated probabilities (N, classes), the memory's unit-length vectors (N, D) and the
        head's largest raw logit (N,) of raw RGB images (`models.colour`: the vector is the graph's
        embedding, with the colours when the card weighs them; `models.openset`: familiarity)."""
        return self._runner.infer(images)

    def top(self, probabilities: np.ndarray, top_k: int) -> list[Candidate]:
        """The `top_k` labels of one row of probabilities, best first (ties: lower index first)."""
        k = max(1, min(top_k, len(self.labels)))
        order = np.argsort(-probabilities, kind="stable")[:k]
        return [Candidate(self.labels[i], float(probabilities[i])) for i in order]

    def predict_batch(self, images: list[np.ndarray], *, top_k: int = 3) -> list[list[Candidate]]:
        probabilities = self.infer(images).probabilities
        return [self.top(row, top_k) for row in probabilities]


class ModelWatcher:
    """Hot reload for the bot: `check()` costs one look at the registry's pointer while nothing
    changes (a stat of a file, or a HEAD request to the object store: no shared filesystem needed),
    and returns a new Classifier once the active version has changed, copied into the local cache
    first when the registry is remote. A version that fails to load is logged and skipped (the
    caller keeps its current model) until the pointer changes again."""

    def __init__(self, registry: Registry, current: Classifier | None = None, **load_kw: Any) -> None:
        self.registry = registry
        self.load_kw = load_kw
        self.current_version = current.version if current is not None else None
        self._seen: str | None = registry.pointer_stamp() if current is not None else None

    def check(self) -> Classifier | None:
        stamp = self.registry.pointer_stamp()
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        version = self.registry.active_version()
        if version is None or version == self.current_version:
            return None
        try:
            classifier = Classifier.load(self.registry.version_dir(version), **self.load_kw)
        except ModelLoadError as exc:
            log.error("keeping model %s: the new active version does not load: %s", self.current_version, exc)
            return None
        log.info("model changed: %s -> %s", self.current_version, version)
        self.current_version = version
        self.registry.trim_cache()
        return classifier
