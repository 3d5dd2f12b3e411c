"""Encoding RGB pixels for storage: metadata-free PNG and baseline JPEG, deterministic bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from media.pixels import as_rgb_array


def encode_png(rgb: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless, metadata-free PNG; the same pixels (and level) always give the same bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(as_rgb_array(rgb))).save(
        buffer, "PNG", compress_level=compress_level, optimize=False
    )
    return buffer.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """Baseline JPEG without EXIF or ICC; the same pixels and quality always give the same bytes."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(as_rgb_array(rgb))).save(
        buffer, "JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False
    )
    return buffer.getvalue()
