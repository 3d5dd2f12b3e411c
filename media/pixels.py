"""RGB pixels of an opened Pillow frame: EXIF orientation undone, alpha composited on white, deep
colour scaled down; and the check that an array is HxWx3 uint8 RGB.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

_COMPOSITE_BAND_PIXELS: Final = 1 << 20
_EXIF_ORIENTATION_TAG: Final = 0x0112


def exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF must not cost the picture; it only loses its rotation
        logger.debug("unreadable EXIF ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Undo the EXIF orientation: the stored pixels become what a viewer shows."""
    if orientation == 2:
        pixels = pixels[:, ::-1]
    elif orientation == 3:
        pixels = pixels[::-1, ::-1]
    elif orientation == 4:
        pixels = pixels[::-1]
    elif orientation == 5:
        pixels = pixels.transpose(1, 0, 2)
    elif orientation == 6:
        pixels = np.rot90(pixels, -1)
    elif orientation == 7:
        pixels = np.rot90(pixels, -1)[::-1]
    elif orientation == 8:
        pixels = np.rot90(pixels, 1)
    return np.ascontiguousarray(pixels)


def to_rgb(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 pixels of the current frame, alpha composited on white, deep colour scaled down."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return np.array(image, dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them.
        deep = np.asarray(image)
        if deep.dtype.itemsize > 2:
            deep = np.clip(deep, 0, 65535)
        grey = (deep >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.clip(np.nan_to_num(np.asarray(image)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return _over_white(np.asarray(image if mode == "RGBA" else image.convert("RGBA")))
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite on white, a band of rows at a time so the 16-bit arithmetic never spans the image."""
    height, width = rgba.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _COMPOSITE_BAND_PIXELS // max(1, width))
    for top in range(0, height, rows):
        band = rgba[top : top + rows].astype(np.uint16)
        alpha = band[:, :, 3:4]
        out[top : top + rows] = (band[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return out


def as_rgb_array(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got shape {array.shape} and dtype {array.dtype}")
    return array
