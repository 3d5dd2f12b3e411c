"""Rectangles in pixels: the `Box` a face finder returns and the one intersection-over-union everyone uses."""

from __future__ import annotations

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
