"""Rectangles in pixels as (x, y, width, height): the one intersection-over-union everyone uses."""

from __future__ import annotations

Rect = tuple[int, int, int, int]


def iou(a: Rect, b: Rect) -> float:
    """Intersection over union of two rectangles; 0.0 when they do not meet (or both are empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
