"""The ONNX classifier the bot and the CLI use: calibrated top-k per face, or for the whole image.

Probabilities are softmax(logits / temperature) with the card's temperature. The top answer is
"unknown" when its probability is below the threshold: the caller's, else the card's per-class
threshold for that label, else the card's global one.

Animated images (`frames`): faces are detected in every frame; the frame with the most faces
(the earliest on a tie) sets the face positions. Each of its faces is matched in every other frame
to the detected face that overlaps it most (IoU >= 0.3), and the probabilities of all matched crops
are averaged (embeddings too, then re-normalized). When no frame has a face, the whole-image
probabilities of all frames are averaged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models import preprocess
from models.card import ONNX_NAME, VERSION_RE, ModelCard, read_card
from models.errors import ModelLoadError
from models.runtime import check_signature, open_session, session_provider

if TYPE_CHECKING:
    from catalog.faces import Box
    from models.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_BATCH = 32
FRAME_MATCH_IOU = 0.3


class FaceFinder(Protocol):
    """What `catalog.faces.FaceDetector` provides."""

    def detect(self, rgb: np.ndarray) -> list[Box]: ...

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Candidate:
    label: str
    probability: float


@dataclass(frozen=True)
class FaceAnswer:
    box: Box | None  # None: the answer is for the whole image
    candidates: list[Candidate]
    unknown: bool
    embedding: np.ndarray | None = None
    crop: np.ndarray | None = None  # the face crop the model saw (the reference frame's), RGB

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (`namae classify --json`, prediction rows); no embedding."""
        return {
            "box": self.box.as_dict() if self.box is not None else None,
            "unknown": self.unknown,
            "candidates": [
                {"label": c.label, "probability": round(c.probability, 6)} for c in self.candidates
            ],
        }


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
    scaled /= scaled.sum(axis=1, keepdims=True)
    return scaled


class Classifier:
    def __init__(
        self,
        card: ModelCard,
        session: Any,
        *,
        path: Path,
        detector: FaceFinder | None = None,
        crop_size: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.card = card
        self.session = session
        self.path = path
        self.detector = detector
        # None: the detector's own crop size, i.e. face crops exactly as the scraper stores them.
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.version: str = card.version
        self.labels: list[str] = list(card.labels)
        self.image_size: int = card.image_size
        self.threshold: float = card.thresholds.default
        self.provider: str = session_provider(session)
        self.embedding_dim: int = check_signature(session, card, path)
        self._input_name = session.get_inputs()[0].name

    @classmethod
    def load(
        cls,
        version_dir: Path,
        *,
        detector: FaceFinder | None = None,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        crop_size: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> Classifier:
        version_dir = Path(version_dir)
        # A registry folder must carry its own version; a copy elsewhere may have any name.
        expect = version_dir.name if VERSION_RE.match(version_dir.name) else None
        card = read_card(version_dir, expect_version=expect, verify_hash=True)
        session = open_session(
            version_dir / ONNX_NAME, providers=providers, intra_op_threads=intra_op_threads
        )
        classifier = cls(
            card, session, path=version_dir, detector=detector, crop_size=crop_size, batch_size=batch_size
        )
        log.info(
            "loaded model %s (%d labels, %dpx) on %s", card.version, len(card.labels), card.image_size,
            classifier.provider,
        )  # fmt: skip
        return classifier

    @classmethod
    def from_registry(cls, registry: Registry, **kw: Any) -> Classifier:
        """The active version (resolved once, so a concurrent promotion gives the old or the new)."""
        _, folder = registry.require_active()
        return cls.load(folder, **kw)

    # -- inference -----------------------------------------------------------------------------

    def infer(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (N, classes) and L2-normalized embeddings (N, D) of raw RGB images."""
        if not images:
            return np.zeros((0, len(self.labels))), np.zeros((0, self.embedding_dim), dtype=np.float32)
        probabilities, embeddings = [], []
        for start in range(0, len(images), self.batch_size):
            batch = preprocess.to_batch(images[start : start + self.batch_size], self.image_size)
            logits, embedding = self.session.run(list(preprocess.OUTPUT_NAMES), {self._input_name: batch})
            probabilities.append(softmax(logits, self.card.temperature))
            embeddings.append(embedding)
        return np.concatenate(probabilities), np.concatenate(embeddings)

    def _top(self, probabilities: np.ndarray, top_k: int) -> list[Candidate]:
        k = max(1, min(top_k, len(self.labels)))
        order = np.argsort(-probabilities, kind="stable")[:k]
        return [Candidate(self.labels[i], float(probabilities[i])) for i in order]

    def predict_batch(self, images: list[np.ndarray], *, top_k: int = 3) -> list[list[Candidate]]:
        probabilities, _ = self.infer(images)
        return [self._top(row, top_k) for row in probabilities]

    def _answer(
        self,
        box: Box | None,
        probabilities: np.ndarray,
        embedding: np.ndarray,
        top_k: int,
        threshold: float | None,
        crop: np.ndarray | None = None,
    ) -> FaceAnswer:
        candidates = self._top(probabilities, top_k)
        best = candidates[0]
        limit = threshold if threshold is not None else self.card.thresholds.for_label(best.label)
        norm = float(np.linalg.norm(embedding))
        return FaceAnswer(
            box=box,
            candidates=candidates,
            unknown=best.probability < limit,
            embedding=(embedding / norm).astype(np.float32) if norm > 0 else embedding,
            crop=crop,
        )

    def classify_image(
        self,
        rgb: np.ndarray,
        *,
        top_k: int = 3,
        threshold: float | None = None,
        frames: list[np.ndarray] | None = None,
    ) -> list[FaceAnswer]:
        """One answer per face, left to right; one whole-image answer when no face is found.
        `frames`: further frames of an animated image (see the module docstring for the merge)."""
        all_frames = [rgb, *(f for f in (frames or []) if f is not rgb)]
        if self.detector is None:
            boxes = [[] for _ in all_frames]
        else:
            boxes = [sorted(self.detector.detect(f), key=lambda b: (b.x, b.y)) for f in all_frames]
        reference = max(range(len(all_frames)), key=lambda i: (len(boxes[i]), -i))
        if not boxes[reference]:
            probabilities, embeddings = self.infer(all_frames)
            return [self._answer(None, probabilities.mean(0), embeddings.mean(0), top_k, threshold)]
        crops, owners, shown = [], [], []
        for face, box in enumerate(boxes[reference]):
            for index, frame in enumerate(all_frames):
                match = box if index == reference else self._match(box, boxes[index])
                if match is not None:
                    crops.append(self.detector.crop(frame, match, self.crop_size))
                    owners.append(face)
                    if index == reference:
                        shown.append(crops[-1])
        probabilities, embeddings = self.infer(crops)
        owner = np.asarray(owners)
        return [
            self._answer(
                box,
                probabilities[owner == face].mean(0),
                embeddings[owner == face].mean(0),
                top_k,
                threshold,
                crop=shown[face],
            )
            for face, box in enumerate(boxes[reference])
        ]

    @staticmethod
    def _match(box: Box, others: list[Box]) -> Box | None:
        best = max(others, key=box.iou, default=None)
        return best if best is not None and box.iou(best) >= FRAME_MATCH_IOU else None


class ModelWatcher:
    """Hot reload for the bot: `check()` costs one stat of the pointer file while nothing changes,
    and returns a new Classifier once the active version has changed. A version that fails to load
    is logged and skipped (the caller keeps its current model) until the pointer changes again."""

    def __init__(self, registry: Registry, current: Classifier | None = None, **load_kw: Any) -> None:
        self.registry = registry
        self.load_kw = load_kw
        self.current_version = current.version if current is not None else None
        self._seen: tuple[int, int, int, int] | None = self._stamp() if current is not None else None

    def _stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.registry.pointer_path)
        except FileNotFoundError:
            return None
        # Every switch renames a new file over the pointer: a new inode and new times.
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def check(self) -> Classifier | None:
        stamp = self._stamp()
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
        return classifier
