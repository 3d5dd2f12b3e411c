"""media.hashes: the hashes are imagehash's, and a picture's mirrored fingerprint (made from its own
small copies, mirrored) is the fingerprint of the mirrored picture."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image as PILImage

from media.hashes import fingerprint, hash_to_int, perceptual_hashes, subcrop_hashes


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth blobs (hashes with structure) with some noise, width x height RGB."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((9, 7, 3)) * 255).astype(np.uint8)
    smooth = np.asarray(PILImage.fromarray(coarse).resize((width, height), PILImage.Resampling.BICUBIC))
    noise = rng.integers(-12, 13, size=smooth.shape)
    return np.clip(smooth.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _imagehash_pair(picture: PILImage.Image) -> tuple[int, int]:
    return hash_to_int(str(imagehash.phash(picture))), hash_to_int(str(imagehash.dhash(picture)))


# Odd and even margins around the centre crop (its mirror image is a pixel off when rounding is),
# portrait and landscape, one side above the 512 px the sub-crops are hashed at.
SIZES = [(301, 200, 1), (300, 200, 2), (200, 301, 3), (57, 91, 4), (777, 512, 5), (1024, 700, 6)]


@pytest.mark.parametrize(("width", "height", "seed"), SIZES)
def test_hashes_are_imagehash(width: int, height: int, seed: int) -> None:
    rgb = _picture(width, height, seed)
    grey = PILImage.fromarray(rgb).convert("L")
    assert perceptual_hashes(rgb) == _imagehash_pair(PILImage.fromarray(rgb))
    w, h = round(width * 0.93), round(height * 0.93)
    centre = (round((width - w) * 0.5), round((height - h) * 0.5))
    crops = subcrop_hashes(grey)
    assert crops[0] == _imagehash_pair(grey.crop((0, 0, w, h)))
    assert crops[4] == _imagehash_pair(grey.crop((centre[0], centre[1], centre[0] + w, centre[1] + h)))


@pytest.mark.parametrize(("width", "height", "seed"), [s for s in SIZES if max(s[:2]) <= 512])
def test_mirror_is_the_mirrored_pictures_fingerprint(width: int, height: int, seed: int) -> None:
    rgb = _picture(width, height, seed)
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    own = fingerprint(rgb, *perceptual_hashes(rgb))
    theirs = fingerprint(flipped, *perceptual_hashes(flipped), mirror=False)
    assert own.mirror is not None
    assert (own.mirror.phash, own.mirror.dhash, own.mirror.crops) == (
        theirs.phash,
        theirs.dhash,
        theirs.crops,
    )
    assert (own.mirror.phash, own.mirror.crops) != (own.phash, own.crops)  # not the picture's own
    # the signature is the picture's own thumbnail mirrored (a box filter's rounding is not mirrored)
    side = int(len(own.signature) ** 0.5)
    thumbnail = np.frombuffer(own.signature, np.uint8).reshape(side, side)
    assert own.mirror.signature == thumbnail[:, ::-1].tobytes()


def test_mirror_of_a_large_picture_is_hashed_on_its_smaller_copy() -> None:
    rgb = _picture(1024, 700, 7)
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    own = fingerprint(rgb, *perceptual_hashes(rgb))
    theirs = fingerprint(flipped, *perceptual_hashes(flipped), mirror=False)
    assert own.mirror is not None
    # the sub-crops come from the same 512 px copy either way round; the whole-image hashes of the
    # mirror from that copy, not the full picture, so they may differ by a few bits
    assert own.mirror.crops == theirs.crops
    assert (own.mirror.phash ^ theirs.phash).bit_count() <= 4
    assert (own.mirror.dhash ^ theirs.dhash).bit_count() <= 4
