"""Perceptual hashes of pictures and the pixel check that confirms a near-duplicate.

- `perceptual_hashes`: 64-bit pHash and dHash (imagehash, 8x8) of upright RGB pixels, as integers;
- `fingerprint`: what crop-tolerant matching knows of a picture: its hashes, the hashes of five
  sub-crops, and a 64x64 greyscale `signature`; with `mirror`, also those of the horizontally
  mirrored picture (a common repost edit), for lookups only: only the picture's own are stored;
- `is_same_picture`: the verification of two signatures, one aligned as a crop of the other over a
  grid of scales and one-pixel offsets, accepted when the normalized cross-correlation of the pixels
  AND of their gradients are both high. Distinct portraits of one character differ in pose and
  background, which the gradients see even when the hashes do not.

Pure functions over pixels; the index that searches stored hashes is `scraper.dedup.HashIndex`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import imagehash
import numpy as np
from PIL import Image as PILImage

# Crop-tolerant matching (measured on seeds 7-11 of sandbox.characters.generate_dataset: 800
# portraits, 300 copies). Sub-crops keeping 93% of the side at the four corners and the centre put
# every generated crop within 12 bits (pHash and dHash) of one of them.
SUBCROP_KEEP = 0.93
SUBCROP_ANCHORS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5))
SIGNATURE_SIDE = 64  # greyscale thumbnail persisted per image (4 KiB)
COMPARE_SIDE = 32  # the aligned crops are compared at this size (area-averaged from the signature)
VERIFY_KEEPS = tuple(round(1.0 - step / 100, 2) for step in range(15))  # 1.00 .. 0.86 of the side
# Verification on seeds 7-11: planted copies score >= 0.964 (pixels) and >= 0.903 (gradients);
# of 7,600 pairs of distinct portraits of one character none passes both (the highest pixel scores,
# 0.959 and 0.949, come with gradient scores of 0.85 and 0.84).
VERIFY_MIN_NCC = 0.95
VERIFY_MIN_GRADIENT_NCC = 0.88


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def hash_to_int(text: str) -> int:
    return int(text, 16)


def int_to_hash(value: int) -> str:
    return f"{value:016x}"


def perceptual_hashes(rgb: np.ndarray) -> tuple[int, int]:
    """(pHash, dHash) of upright RGB pixels as 64-bit integers (imagehash, 8x8)."""
    return _hash_pair(PILImage.fromarray(rgb))


@dataclass(frozen=True)
class Fingerprint:
    """What near-duplicate matching knows of one picture."""

    phash: int
    dhash: int
    crops: tuple[tuple[int, int], ...]  # (pHash, dHash) per SUBCROP_ANCHORS entry
    signature: bytes  # SIGNATURE_SIDE x SIGNATURE_SIDE greyscale, row-major uint8
    # The horizontally mirrored picture's fingerprint: looked up too, so that a flipped repost
    # is found; never stored (a stored picture is found by its own hashes either way round).
    mirror: Fingerprint | None = None


# imagehash's pHash and dHash shrink the greyscale picture to these sides before hashing (LANCZOS);
# PIL's resampling is mirror-symmetric bit for bit, so a mirrored picture's small copies are the
# small copies mirrored, and its hashes need no second shrink of the picture.
PHASH_SIDE = (32, 32)
DHASH_SIDE = (9, 8)
HASHING_SIDE = 512
_Small = tuple[np.ndarray, np.ndarray]  # the pHash and dHash copies of one picture
_Box = tuple[int, int, int, int]


def _small(picture: PILImage.Image) -> _Small:
    grey = picture.convert("L")
    return (
        np.asarray(grey.resize(PHASH_SIDE, PILImage.Resampling.LANCZOS)),
        np.asarray(grey.resize(DHASH_SIDE, PILImage.Resampling.LANCZOS)),
    )


def _mirrored(small: _Small) -> _Small:
    return small[0][:, ::-1], small[1][:, ::-1]


def _pair_of(small: _Small) -> tuple[int, int]:
    """imagehash's pHash and dHash from the small copies they shrink a picture to (PIL returns a
    copy when asked for the size a picture already has)."""
    pixels, rows = (PILImage.fromarray(np.ascontiguousarray(a), "L") for a in small)
    return hash_to_int(str(imagehash.phash(pixels))), hash_to_int(str(imagehash.dhash(rows)))


def _hash_pair(picture: PILImage.Image) -> tuple[int, int]:
    return _pair_of(_small(picture))


def _subcrop_boxes(width: int, height: int) -> list[_Box]:
    w, h = max(1, round(width * SUBCROP_KEEP)), max(1, round(height * SUBCROP_KEEP))
    boxes = []
    for ax, ay in SUBCROP_ANCHORS:
        x, y = round((width - w) * ax), round((height - h) * ay)
        boxes.append((x, y, x + w, y + h))
    return boxes


def subcrop_hashes(grey: PILImage.Image) -> tuple[tuple[int, int], ...]:
    """(pHash, dHash) of the SUBCROP_ANCHORS crops, each keeping SUBCROP_KEEP of both sides."""
    return tuple(_hash_pair(grey.crop(box)) for box in _subcrop_boxes(*grey.size))


def hashing_copy(rgb: np.ndarray) -> PILImage.Image:
    """The greyscale copy, at most HASHING_SIDE pixels on a side, that a fingerprint's sub-crops and
    mirror are hashed on: imagehash shrinks to 32x32 anyway."""
    grey = PILImage.fromarray(rgb).convert("L")
    if max(grey.size) > HASHING_SIDE:
        grey.thumbnail((HASHING_SIDE, HASHING_SIDE), PILImage.Resampling.BOX)
    return grey


def fingerprint(rgb: np.ndarray, phash: int, dhash: int, *, mirror: bool = True) -> Fingerprint:
    """The sub-crop hashes and the signature of upright RGB pixels whose whole-image hashes are
    (`phash`, `dhash`); with `mirror`, the mirrored picture's fingerprint beside them (its
    whole-image hashes from the same grey copy the sub-crops are hashed on)."""
    grey = hashing_copy(rgb)
    thumbnail = grey.resize((SIGNATURE_SIDE, SIGNATURE_SIDE), PILImage.Resampling.BOX)
    width = grey.size[0]
    boxes = _subcrop_boxes(*grey.size)  # the mirrored picture's too: it has the same size
    smalls = {box: _small(grey.crop(box)) for box in boxes}
    mirrored = None
    if mirror:
        # The mirrored picture's crop (x0, y0, x1, y1) is this picture's (width - x1, y0, width - x0,
        # y1) mirrored: the corners' are each other's; the centre's differs by a pixel when rounding
        # does, and is then shrunk on its own.
        crops = []
        for x0, y0, x1, y1 in boxes:
            box = (width - x1, y0, width - x0, y1)
            small = smalls[box] if box in smalls else _small(grey.crop(box))
            crops.append(_pair_of(_mirrored(small)))
        mirrored = Fingerprint(
            *_pair_of(_mirrored(_small(grey))),
            tuple(crops),
            thumbnail.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT).tobytes(),
        )
    return Fingerprint(
        phash, dhash, tuple(_pair_of(smalls[box]) for box in boxes), thumbnail.tobytes(), mirrored
    )


def crop_hashes_to_text(crops: Iterable[tuple[int, int]]) -> str:
    return "".join(int_to_hash(p) + int_to_hash(d) for p, d in crops)


def crop_hashes_from_text(text: str | None) -> tuple[tuple[int, int], ...]:
    if not text:
        return ()
    values = [hash_to_int(text[i : i + 16]) for i in range(0, len(text) - len(text) % 32, 16)]
    return tuple(zip(values[0::2], values[1::2], strict=True))


def _area_weights(keep: float, offset: float) -> np.ndarray:
    """COMPARE_SIDE x SIGNATURE_SIDE matrix averaging, per output pixel, the signature pixels under
    it, for the span [offset, offset + keep] of the side (fractions of it)."""
    edges = (offset + np.arange(COMPARE_SIDE + 1) / COMPARE_SIDE * keep) * SIGNATURE_SIDE
    low, high = edges[:-1, None], edges[1:, None]
    pixel = np.arange(SIGNATURE_SIDE)[None, :]
    weights = np.clip(np.minimum(high, pixel + 1) - np.maximum(low, pixel), 0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@cache
def _alignment_groups() -> tuple[np.ndarray, ...]:
    """Per scale in VERIFY_KEEPS, the weights of every offset one signature pixel apart."""
    groups = []
    for keep in VERIFY_KEEPS:
        steps = int(np.ceil((1.0 - keep) * SIGNATURE_SIDE)) + 1
        groups.append(np.stack([_area_weights(keep, o) for o in np.linspace(0.0, 1.0 - keep, steps)]))
    return tuple(groups)


def _centred_unit(pixels: np.ndarray) -> np.ndarray:
    centred = pixels - pixels.mean(axis=(-1, -2), keepdims=True)
    return centred / (np.linalg.norm(centred, axis=(-1, -2), keepdims=True) + 1e-6)


def _gradients(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([np.diff(pixels, axis=-1)[:-1, :], np.diff(pixels, axis=-2)[:, :-1]], axis=-1)


def _decode_signature(signature: bytes) -> np.ndarray:
    if len(signature) != SIGNATURE_SIDE * SIGNATURE_SIDE:
        raise ValueError(f"a signature has {SIGNATURE_SIDE**2} bytes, got {len(signature)}")
    return np.frombuffer(signature, dtype=np.uint8).reshape(SIGNATURE_SIDE, SIGNATURE_SIDE).astype(np.float32)


def _best_crop_of(large: np.ndarray, small: np.ndarray) -> tuple[float, float]:
    """How well `small` matches the best-aligned crop of `large`: (pixel NCC, gradient NCC)."""
    whole = _area_weights(1.0, 0.0)
    target_pixels = whole @ small @ whole.T
    target = _centred_unit(target_pixels)
    best_score, best_crop = -1.0, target_pixels
    for group in _alignment_groups():
        # Every (row offset, column offset) crop at this scale, separably: W_y @ large @ W_x^T.
        crops = np.matmul((group @ large)[:, None], group.transpose(0, 2, 1)[None])
        scores = (_centred_unit(crops) * target).sum(axis=(-1, -2))
        at = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[at] > best_score:
            best_score, best_crop = float(scores[at]), crops[at]
    gradient = (_centred_unit(_gradients(best_crop)) * _centred_unit(_gradients(target_pixels))).sum()
    return best_score, float(gradient)


def similarity(a: bytes, b: bytes) -> tuple[float, float]:
    """(pixel NCC, gradient NCC) of two signatures at the best alignment of one as a crop of the
    other (either way round), scales VERIFY_KEEPS."""
    first, second = _decode_signature(a), _decode_signature(b)
    return max(_best_crop_of(first, second), _best_crop_of(second, first))


def is_same_picture(a: bytes, b: bytes) -> bool:
    pixels, gradients = similarity(a, b)
    return pixels >= VERIFY_MIN_NCC and gradients >= VERIFY_MIN_GRADIENT_NCC
