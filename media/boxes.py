"""Rectangles in pixels: the `Box` a face finder returns and the one intersection-over-union everyone uses, and detections matched to true boxes by it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

Rect = tuple[int, int, int, int]  # x, y, width, height
# Two boxes of one picture show the same face when they overlap at least this much (IoU): the
# bot's box (found on a reduced decode) and the scraper's for the same file differ by a few pixels.
SAME_FACE_IOU = 0.5


def iou(a: Rect, b: Rect) -> float:
    """Intersection over union of two rectangles; 0.0 when they do not meet (or both are empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_detections(
    found: Sequence[tuple[Rect, float]], truth: Sequence[Sequence[float]], min_iou: float
) -> list[tuple[float, bool]]:
    """Each detection's score and whether it hits a true box: greedy, best score first, each true
    box taken once by the detection that overlaps it most (at least `min_iou`), so lower scores
    never change the matches of higher ones (how a detector's precision and recall are counted).
    True boxes (x, y, width, height) may be fractional, as annotations are; they are rounded."""
    rects: list[Rect] = [(round(x), round(y), round(w), round(h)) for x, y, w, h in truth]
    used: set[int] = set()
    scored: list[tuple[float, bool]] = []
    for rect, score in sorted(found, key=lambda item: -item[1]):
        best, which = 0.0, -1
        for index, face in enumerate(rects):
            overlap = iou(rect, face)
            if index not in used and overlap > best:
                best, which = overlap, index
        hit = best >= min_iou
        if hit:
            used.add(which)
        scored.append((score, hit))
    return scored


def same_face(a: Rect, b: Rect) -> bool:
    """Whether two boxes in one picture are the same face (`SAME_FACE_IOU`)."""
    return iou(a, b) >= SAME_FACE_IOU


@dataclass(frozen=True)
class Box:
    """A face in pixel coordinates of the image it was found in: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def rect(self) -> Rect:
        return (self.x, self.y, self.w, self.h)

    def iou(self, other: Box) -> float:
        return iou(self.rect, other.rect)

    @property
    def area(self) -> int:
        return self.w * self.h

    def overlap(self, other: Box) -> float:
        """Intersection area over the smaller box's area (1.0 when one box contains the other)."""
        width = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        height = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        if width <= 0 or height <= 0:
            return 0.0
        return (width * height) / max(1, min(self.area, other.area))

    def scaled(self, factor: float, width: int, height: int) -> Box:
        """This box in another scale of the same picture (`factor` = new pixels per old pixel),
        kept inside a `width` x `height` frame."""
        x, y = round(self.x * factor), round(self.y * factor)
        return Box(x, y, min(round(self.w * factor), width - x), min(round(self.h * factor), height - y))
