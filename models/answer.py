"""The one answer path: the bytes of a picture (or its decoded pixels) in, an `Answer` out.

    decode (media.decode, `DecodeLimits`) -> faces (media.faces) -> model (models.classifier)
    -> one `FaceAnswer` per face, each with a kind

The bot, `namae classify`, the demo and the benchmarks all call `answer_image`, so the same file
gets the same answer everywhere. Faces are answered left to right; when the face finder finds no
face, the picture gets one answer (box None) from the model's outputs averaged over the whole
picture and a grid of overlapping squares of it (`models.regions`), unless one of the finder's
weaker candidates (`FaceFinder.rescue`: the cascade with fewer neighbours) is named past the no-face
bar: then those faces are the answer; or unless one face fills the picture (`FaceFinder.fills`:
the trained finder, made for faces up to about a third of a picture, finds it in the picture set in
a larger canvas): then the picture is answered as a face crop handed over as it is. Without a
finder the picture is answered as it is. With a character memory (a version trained with it), each
face gets one of the open-set kinds (`models.openset`: a name, one of two, a character I don't
know, not a character) from the head, the memory and the card's open-set thresholds; without one,
probabilities are calibrated (the card's temperature) and whether the best candidate is named is
decided by the card's thresholds (per class, else global). Either way a caller's explicit
`threshold` (a guild's own setting) replaces the naming confidence threshold. A card with
second-look margins has a face whose answer lands near a bar looked at again in its mirror image
(every crop of it: frames or regions), and decided on both looks averaged; the answer's embedding
is the vector it was decided on. A version of several members (`Classifier.first`) runs member 1
alone on every face first; only the faces it lands near one of its bars run through every member
(and their second look), so most faces cost one member's time. A face member 1 decided alone has
no embedding: its vector is not the memory's, and a label landing on it reaches the memory through
the worker's memory job, which embeds the stored crop with every member (`trainer.memory_sync`).

Animated pictures: faces are found in every sampled frame; the frame with the most faces (the
earliest on a tie) sets the face positions. Each of its faces is matched in every other frame to
the detected face that overlaps it most (IoU >= 0.3), and the probabilities of all matched crops are
averaged (embeddings too, then re-normalized). When no frame has a face, the probabilities of the
regions of all frames are averaged.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from media.boxes import Box
from media.decode import DecodedImage, DecodeLimits
from models.openset import Kind, Looks, Seen, both_looks
from models.preprocess import mirrored
from models.regions import picture_regions

__all__ = ["Answer", "FaceAnswer", "Kind", "answer_image", "answer_pixels"]

from models.classifier import Candidate

if TYPE_CHECKING:
    from media.faces import FaceFinder
    from models.classifier import Classifier, GraphRunner
    from models.open_world import FaceDecision

FRAME_MATCH_IOU = 0.3


@dataclass(frozen=True)
class FaceAnswer:
    box: Box | None  # in the file's own pixels; None: the answer is for the whole picture
    candidates: tuple[Candidate, ...]  # best first, calibrated probabilities
    kind: Kind
    threshold: float  # the card's threshold for the best candidate (what `kind` was decided by)
    embedding: np.ndarray | None = None  # L2-normalized, the memory's width (None: member 1 alone decided)
    crop: np.ndarray | None = None  # the face crop the model saw (the reference frame's), RGB

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def unknown(self) -> bool:
        return self.kind is not Kind.NAME

    def with_threshold(self, threshold: float | None) -> FaceAnswer:
        """This answer decided by an explicit threshold instead of the card's (None: unchanged).
        The threshold is on the naming confidence: a pair, a stranger or a picture with no
        character stay what the open-set rule found them to be."""
        if threshold is None or self.kind not in (Kind.NAME, Kind.UNKNOWN):
            return self
        return replace(self, kind=_kind(self.candidates, threshold), threshold=threshold)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (`namae classify --json`, prediction rows); no pixels."""
        return {
            "box": self.box.as_dict() if self.box is not None else None,
            "kind": self.kind.value,
            "unknown": self.unknown,
            "candidates": [
                {"label": c.label, "probability": round(c.probability, 6), "examples": c.examples}
                for c in self.candidates
            ],
        }


@dataclass(frozen=True)
class Answer:
    """The answer for one picture: its faces (or the whole picture) and what the file was."""

    sha256: str
    model_version: str
    faces: tuple[FaceAnswer, ...]
    width: int  # the file's upright size, whatever scale it was decoded at
    height: int
    format: str
    animated: bool
    seconds: float = 0.0

    def with_threshold(self, threshold: float | None) -> Answer:
        if threshold is None:
            return self
        return replace(self, faces=tuple(f.with_threshold(threshold) for f in self.faces))

    def without_pixels(self) -> Answer:
        """The same answer without crops (what a cache keeps)."""
        return replace(self, faces=tuple(replace(f, crop=None) for f in self.faces))


def answer_image(
    data: bytes | DecodedImage,
    *,
    model: Classifier,
    finder: FaceFinder | None,
    limits: DecodeLimits,
    top_k: int = 3,
    threshold: float | None = None,
    sha256: str | None = None,
) -> Answer:
    """Decode (unless given pixels), find faces, run the model, decide: the answer for one picture.
    Raises `media.decode.ImageRejected` for bytes that are no usable picture."""
    started = time.perf_counter()
    if isinstance(data, DecodedImage):
        decoded = data
        digest = sha256 or ""
    else:
        decoded = limits.decode(data)
        digest = sha256 or hashlib.sha256(data).hexdigest()
    frames = decoded.frames[1:] if decoded.animated else []
    faces = answer_pixels(decoded.rgb, frames, model=model, finder=finder, top_k=top_k)
    # Boxes are reported in the file's pixels, whatever scale it was decoded at.
    back = 1 / decoded.scale
    faces = [
        f if f.box is None else replace(f, box=f.box.scaled(back, decoded.full_width, decoded.full_height))
        for f in faces
    ]
    answer = Answer(
        sha256=digest,
        model_version=model.version,
        faces=tuple(faces),
        width=decoded.full_width,
        height=decoded.full_height,
        format=decoded.format,
        animated=decoded.animated,
        seconds=time.perf_counter() - started,
    )
    return answer.with_threshold(threshold)


def answer_pixels(
    rgb: np.ndarray,
    frames: list[np.ndarray] | None = None,
    *,
    model: Classifier,
    finder: FaceFinder | None,
    top_k: int = 3,
) -> list[FaceAnswer]:
    """One answer per face in upright RGB pixels, left to right; one whole-picture answer when no
    face is found. `frames`: further frames of an animated picture (see the module docstring)."""
    all_frames = [rgb, *(f for f in (frames or []) if f is not rgb)]
    if finder is None:
        boxes: list[list[Box]] = [[] for _ in all_frames]
    else:
        boxes = [sorted(finder.detect(f), key=lambda b: (b.x, b.y)) for f in all_frames]
    reference = max(range(len(all_frames)), key=lambda i: (len(boxes[i]), -i))
    if finder is None or not boxes[reference]:
        if finder is not None:
            rescued = _rescued(model, finder, rgb, top_k)
            if rescued:
                return rescued
        # no finder: the caller hands over what to answer as it is (e.g. a face crop); a finder
        # that found nothing but one face filling the picture: answered the same way
        as_crop = finder is None or finder.fills(rgb)
        pictures = all_frames if as_crop else [r for f in all_frames for r in picture_regions(f)]
        # otherwise a face finder that found nothing: the picture likelier has no character at all
        return _answer(model, [pictures], [None], [None], top_k, seen=Seen.FACE if as_crop else Seen.REGIONS)
    groups: list[list[np.ndarray]] = []
    shown = []
    for box in boxes[reference]:
        crops = []
        for index, frame in enumerate(all_frames):
            match = box if index == reference else _match(box, boxes[index])
            if match is not None:
                crops.append(finder.crop(frame, match, model.image_size))
                if index == reference:
                    shown.append(crops[-1])
        groups.append(crops)
    return _answer(model, groups, list(boxes[reference]), shown, top_k)


def _rescued(model: Classifier, finder: FaceFinder, rgb: np.ndarray, top_k: int) -> list[FaceAnswer]:
    """The finder's weaker candidates in a picture (an animation's first frame) where it found no
    face, answered as faces under the no-face bar; the ones named, left to right (none: the
    picture's regions answer instead). Only with a memory: a head alone has no bar that tells a
    false box from a character."""
    boxes = finder.rescue(rgb) if model.world is not None else []
    if not boxes:
        return []
    crops = [finder.crop(rgb, box, model.image_size) for box in boxes]
    answers = _answer(
        model, [[crop] for crop in crops], list(boxes), list(crops), top_k, seen=Seen.WEAKER_BOX
    )
    return [answer for answer in answers if answer.kind is Kind.NAME]


def _answer(
    model: Classifier,
    groups: list[list[np.ndarray]],
    boxes: list[Box | None],
    shown: list[np.ndarray | None],
    top_k: int,
    *,
    seen: Seen = Seen.FACE,
) -> list[FaceAnswer]:
    """One answer per group of pictures of one face (its frames, or a picture's regions): the
    model's outputs averaged over the group; near a bar of a mirrored card, over its mirror images
    too (`models.openset`, second look). `seen`: what the groups show (`models.openset.Seen`)."""
    if model.world is None:
        means = _group_means(model, groups)
        first = means._replace(vectors=_unit(means.vectors))
        return [
            _closed_set(model, box, p, e, top_k, crop)
            for box, p, e, crop in zip(boxes, first.probabilities, first.vectors, shown, strict=True)
        ]
    world = model.world
    decided = (
        _in_turn(model, groups, top_k, seen)
        if model.first is not None
        else _decided(model, groups, top_k, seen)
    )
    answers = []
    for g, (decision, unit) in enumerate(decided):
        named = tuple(Candidate(c.label, c.probability, c.examples) for c in decision.candidates)
        bars = world.deciding(decision).thresholds
        answers.append(FaceAnswer(boxes[g], named, decision.kind, bars.name, unit, shown[g]))
    return answers


def _decided(
    model: Classifier, groups: list[list[np.ndarray]], top_k: int, seen: Seen
) -> list[tuple[FaceDecision, np.ndarray]]:
    """Every group decided on the version's graph: its decision and the vector it was decided on."""
    assert model.world is not None
    means = _group_means(model, groups)
    first = means._replace(vectors=_unit(means.vectors))
    decided_on: dict[int, np.ndarray] = {}

    def second(rows: list[int]) -> Looks:
        # the groups' mean vectors before unit length, as averaged over a group's pictures
        both = both_looks(means.rows(rows), _group_means(model, [mirrored(groups[r]) for r in rows]))
        decided_on.update(zip(rows, both.vectors, strict=True))
        return both

    # the head, the character memory and the card's open-set thresholds (models.openset)
    decisions = model.world.decide(first, top_k=top_k, seen=seen, second=second)
    return [(decision, decided_on.get(g, first.vectors[g])) for g, decision in enumerate(decisions)]


def _in_turn(
    model: Classifier, groups: list[list[np.ndarray]], top_k: int, seen: Seen
) -> list[tuple[FaceDecision, np.ndarray | None]]:
    """Member 1 decides every group; the ones near its bars are decided on every member's graph
    (`_decided`), whose vector they keep; the others have none of the memory's width."""
    assert model.world is not None and model.first is not None
    means = _group_means(model.first, groups)
    vectors: dict[int, np.ndarray] = {}

    def every_member(rows: list[int]) -> list[FaceDecision]:
        decided = _decided(model, [groups[r] for r in rows], top_k, seen)
        vectors.update(zip(rows, (vector for _, vector in decided), strict=True))
        return [decision for decision, _ in decided]

    member = means._replace(vectors=_unit(means.vectors))
    decisions = model.world.decide_in_turn(member, every_member, top_k=top_k, seen=seen)
    return [(decision, vectors.get(g)) for g, decision in enumerate(decisions)]


def _group_means(model: Classifier | GraphRunner, groups: list[list[np.ndarray]]) -> Looks:
    """The model run once over every group's pictures: per group, the mean of its looks (the
    vectors' mean not yet at unit length)."""
    owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    looks = model.infer([picture for group in groups for picture in group])
    parts = [owner == g for g in range(len(groups))]
    return Looks(
        np.stack([looks.probabilities[rows].mean(0) for rows in parts]),
        np.stack([looks.vectors[rows].mean(0) for rows in parts]),
        np.array([looks.familiarity[rows].mean() for rows in parts]),
    )


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.where(norms > 0, rows / np.maximum(norms, 1e-12), rows).astype(np.float32)


def _closed_set(
    model: Classifier,
    box: Box | None,
    probabilities: np.ndarray,
    unit: np.ndarray,
    top_k: int,
    crop: np.ndarray | None,
) -> FaceAnswer:
    """A version without a memory: calibrated probabilities and the card's thresholds."""
    candidates = tuple(model.top(probabilities, top_k))
    limit = model.card.thresholds.for_label(candidates[0].label)
    return FaceAnswer(
        box=box,
        candidates=candidates,
        kind=_kind(candidates, limit),
        threshold=limit,
        embedding=unit,
        crop=crop,
    )


def _kind(candidates: tuple[Candidate, ...], threshold: float) -> Kind:
    return Kind.NAME if candidates and candidates[0].probability >= threshold else Kind.UNKNOWN


def _match(box: Box, others: list[Box]) -> Box | None:
    best = max(others, key=box.iou, default=None)
    return best if best is not None and box.iou(best) >= FRAME_MATCH_IOU else None
