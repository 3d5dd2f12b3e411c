"""The one preprocessing function: trainer evaluation, the exporter's parity check and the bot all
call `prepare`. The exported graph takes its output as is: uint8 RGB NHWC, any batch size, and does
the float conversion and ImageNet normalization itself."""

from __future__ import annotations

import numpy as np
from PIL import Image

INPUT_NAME = "image"
INPUT_LAYOUT = "NHWC"
INPUT_DTYPE = "uint8"
OUTPUT_NAMES = ("logits", "embedding")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD_VALUE = 255  # drawings mostly sit on light backgrounds; white padding adds no false edges


def square_pad(rgb: np.ndarray) -> np.ndarray:
    """Pad the shorter side equally so that the whole picture survives the resize undistorted."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    if height == width:
        return rgb
    top = (side - height) // 2
    left = (side - width) // 2
    out = np.full((side, side, 3), PAD_VALUE, dtype=np.uint8)
    out[top : top + height, left : left + width] = rgb
    return out


def prepare(rgb: np.ndarray, size: int) -> np.ndarray:
    """HxWx3 uint8 RGB (a face crop or a whole image) -> size x size x 3 uint8."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    square = square_pad(rgb)
    if square.shape[0] == size:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def mirrored(images: list[np.ndarray]) -> list[np.ndarray]:
    """The pictures flipped left to right (a face's second look, `models.openset`)."""
    return [np.ascontiguousarray(np.asarray(image)[:, ::-1]) for image in images]


def to_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """Prepared NHWC uint8 batch, the exported model's input."""
    if not images:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack([prepare(image, size) for image in images])
