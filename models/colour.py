"""The colours of a face, beside the network's embedding in the character memory's vector.

Hair and eye colours are what people tell anime characters apart by first, and what a network
fine-tuned on N characters keeps only as far as it needs to tell those N apart: a character it
never saw, known from a few examples, then lands near a trained one drawn in other colours. A
colour histogram of the face crop is the same for every character, trained or not, so it carries
what the embedding dropped.

    histogram   hue (18) x saturation (3) x value (3) bins for coloured pixels, 6 value bins for
                grey ones (saturation < 0.25): 168 counts of the crop at 64 x 64 px, square-rooted
                (the Hellinger map: a cosine between two is the Bhattacharyya coefficient) and
                normalized
    vector      [embedding, sqrt(w) * histogram] / sqrt(1 + w), unit length again: a cosine between
                two vectors is (cos of the embeddings + w * cos of the histograms) / (1 + w)

The weight w is the card's (`OpenSetThresholds.colour`, 0: the embedding alone); the memory, the
open-set thresholds and every answer use the same vector. Measured on the default 160 px model
through the open-set answer (`bench/openset.py`; `docs/open-world.md`), w = 0 -> 0.25: a
new character from 5 / 20 faces 0.842 / 0.868 -> 0.865 / 0.887 (the dev set's 5 held-out
characters) and 0.610 / 0.681 -> 0.673 / 0.743 (13 characters of older series from other sources);
strangers named 11.3% -> 10.5%, stranger AUROC within 0.003.
"""

from __future__ import annotations

import cv2
import numpy as np

HUES, SATURATIONS, VALUES, GREYS = 18, 3, 3, 6
BINS = HUES * SATURATIONS * VALUES + GREYS
SIDE = 64  # pixels the crop is shrunk to first: colours, not detail, and a fixed cost per face
GREY_BELOW = 0.25  # saturation under which a pixel counts by its brightness alone


def histogram(rgb: np.ndarray) -> np.ndarray:
    """The unit-length colour histogram (BINS,) of an HxWx3 uint8 RGB picture."""
    small = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float32)
    hue, sat, val = hsv[:, 0] / 180.0, hsv[:, 1] / 255.0, hsv[:, 2] / 255.0
    coloured = sat > GREY_BELOW
    h = np.minimum((hue * HUES).astype(np.int64), HUES - 1)
    s = np.minimum(((sat - GREY_BELOW) / (1.0 - GREY_BELOW) * SATURATIONS).astype(np.int64), SATURATIONS - 1)
    v = np.minimum((val * VALUES).astype(np.int64), VALUES - 1)
    grey = np.minimum((val * GREYS).astype(np.int64), GREYS - 1)
    bins = np.where(coloured, (h * SATURATIONS + s) * VALUES + v, HUES * SATURATIONS * VALUES + grey)
    counts = np.sqrt(np.bincount(bins, minlength=BINS).astype(np.float64) / len(bins))
    return (counts / np.linalg.norm(counts)).astype(np.float32)


def with_colour(embeddings: np.ndarray, pictures: np.ndarray | list[np.ndarray], weight: float) -> np.ndarray:
    """Unit-length (N, D) embeddings of `pictures` (what the network saw) -> the memory's vectors,
    (N, D + BINS) when `weight` > 0, the embeddings themselves at 0."""
    if weight <= 0.0:
        return embeddings
    if len(embeddings) == 0:
        return np.zeros((0, embeddings.shape[1] + BINS), dtype=np.float32)
    colours = np.stack([histogram(np.asarray(p)) for p in pictures])
    joined = np.concatenate([embeddings.astype(np.float32), np.sqrt(weight) * colours], axis=1)
    return (joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def width(embedding_dim: int, weight: float) -> int:
    """The memory's vector width for a graph embedding of `embedding_dim` at `weight`."""
    return embedding_dim + (BINS if weight > 0.0 else 0)
