"""How colourful a picture is: greyscale pictures (manga pages, sketches) are refused by decoding."""

from __future__ import annotations

import math

import numpy as np

from media.pixels import as_rgb_array


def saturation_score(rgb: np.ndarray) -> float:
    """How colourful a picture is, from 0 (grey) to 1.

    The picture is box-averaged down to about 128 pixels a side (scanner and JPEG chroma noise
    averages out, areas of colour do not), white balanced on its brightest pixels (so the tint of
    yellowed paper reads as grey), and scored by the 95th percentile of per-pixel chroma
    (max - min channel): a coloured picture needs only 5% coloured area (hair, eyes) to score high.
    """
    array = as_rgb_array(rgb)
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        return 0.0
    factor = max(1, math.ceil(max(height, width) / 128))
    rows, cols = max(1, height // factor), max(1, width // factor)
    block_h, block_w = height // rows, width // cols
    cropped = array[: rows * block_h, : cols * block_w].astype(np.float32)
    small = cropped.reshape(rows, block_h, cols, block_w, 3).mean(axis=(1, 3)).reshape(-1, 3)
    white = np.maximum(np.percentile(small, 99, axis=0), 128.0)
    balanced = np.minimum(small * (255.0 / white), 255.0)
    chroma = balanced.max(axis=1) - balanced.min(axis=1)
    return float(np.percentile(chroma, 95) / 255.0)


def is_greyscale(rgb: np.ndarray, threshold: float) -> bool:
    """True for greyscale pictures (manga pages, sketches), also when scanned on tinted paper."""
    return saturation_score(rgb) < threshold
