"""Pixels both face finders share: the input check, keeping a box inside a picture, and the square
face crop (`crop_square`), so that a face is framed the same way whichever finder found it."""

from __future__ import annotations

import cv2
import numpy as np

from media.boxes import Box


def crop_square(rgb: np.ndarray, box: Box, size: int, margin: float) -> np.ndarray:
    """A square crop around `box`, grown by `margin` (of its longer side) on each side, resized to
    `size` x `size`. The square is shifted to stay inside the image where it fits; where it is
    larger than the image, the missing part is filled by repeating the border pixels."""
    pixels = as_rgb(rgb)
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    if box.w <= 0 or box.h <= 0:
        raise ValueError(f"cannot crop an empty box {box}")
    height, width = pixels.shape[:2]
    side = max(1, round(max(box.w, box.h) * (1 + 2 * margin)))
    left = _place(box.x + box.w / 2, side, width)
    top = _place(box.y + box.h / 2, side, height)
    inside = pixels[max(0, top) : min(height, top + side), max(0, left) : min(width, left + side)]
    square = cv2.copyMakeBorder(
        inside,
        max(0, -top),
        max(0, top + side - height),
        max(0, -left),
        max(0, left + side - width),
        cv2.BORDER_REPLICATE,
    )
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(square, (size, size), interpolation=interpolation))


def _place(centre: float, side: int, limit: int) -> int:
    """Start of a `side`-long span centred on `centre`, shifted inside [0, limit) when it fits."""
    start = round(centre - side / 2)
    if side <= limit:
        return min(max(0, start), limit - side)
    return round((limit - side) / 2)  # larger than the image: centre it, both ends get padding


def as_rgb(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got shape {array.shape} and dtype {array.dtype}")
    return np.ascontiguousarray(array)


def clamp(box: Box, width: int, height: int) -> Box:
    x, y = max(0, min(box.x, width - 1)), max(0, min(box.y, height - 1))
    return Box(x, y, max(1, min(box.w, width - x)), max(1, min(box.h, height - y)))
