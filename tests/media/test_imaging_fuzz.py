"""Fuzzing decode_image: whatever the bytes, it returns a DecodedImage or raises ImageRejected.

CI runs a fixed, derandomized set of examples per test (200 by default). Set NAMAE_FUZZ_EXAMPLES to
run more, with fresh random exploration, e.g. `NAMAE_FUZZ_EXAMPLES=20000 pytest tests/catalog -k fuzz`.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from catalog.settings import ImageLimits
from media.decode import REASONS, DecodedImage, ImageRejected, decode_image
from tests import hostile_files as hf

EXTRA = os.environ.get("NAMAE_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(EXTRA) if EXTRA else 200,
    derandomize=not EXTRA,
    deadline=None,  # wall-clock time depends on the machine's load; CPU time is asserted below
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# CPU seconds this process may spend on one example: the decoder's own work, which other
# processes on a busy machine do not inflate (wall-clock time is bench/'s business).
PER_EXAMPLE_CPU_S = 2.0
# Permissive shape limits let damaged files reach the pixel decoders; the pixel cap keeps memory small.
DEEP = ImageLimits(min_side=1, max_aspect=1e9, max_pixels=4_000_000, max_frames_scanned=64)


def _seeds() -> dict[str, bytes]:
    pixels = hf.pattern(48, 64, seed=30)
    frames = [Image.new("RGB", (40, 40), colour) for colour in hf.ANIMATION_COLOURS[:3]]
    return {
        "jpeg": hf.encode(pixels, "JPEG", quality=80),
        "jpeg_progressive": hf.encode(pixels, "JPEG", quality=80, progressive=True),
        "jpeg_exif": hf.exif_oriented_jpeg(6),
        "png": hf.encode(pixels, "PNG"),
        "png_palette": hf.png_palette_transparency(),
        "png_16": hf.png_48bit_rgb(),
        "apng": hf.encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "gif": hf.encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": hf.encode(pixels, "WEBP", quality=70),
        "bmp": hf.encode(pixels, "BMP"),
        "cmyk": hf.cmyk_jpeg(),
    }


SEEDS = _seeds()


def _check(data: bytes, limits: ImageLimits) -> None:
    started = time.process_time()
    try:
        decoded = decode_image(data, limits)
    except ImageRejected as exc:
        assert exc.reason in REASONS and exc.detail
    else:
        assert isinstance(decoded, DecodedImage)
        assert decoded.rgb.dtype == np.uint8 and decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
        assert decoded.rgb.shape[0] * decoded.rgb.shape[1] <= limits.max_pixels
        assert 1 <= len(decoded.frames) <= limits.max_frames_sampled
    cpu = time.process_time() - started
    assert cpu < PER_EXAMPLE_CPU_S, f"{len(data)} bytes took {cpu:.2f} s of CPU"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "duplicate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            size = draw(st.integers(1, 256))
            data[at:at] = data[at : at + size]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(data, DEEP)


@FUZZ
@given(
    st.sampled_from(
        [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x01\x00\x00WEBPVP8 "]
    ),
    st.binary(max_size=2048),
)
def test_fuzz_random_bytes_behind_real_magic(magic: bytes, rest: bytes) -> None:
    _check(magic + rest, DEEP)


@FUZZ
@given(mutated())
def test_fuzz_mutated_valid_files(data: bytes) -> None:
    _check(data, DEEP)


@FUZZ
@given(mutated())
def test_fuzz_mutated_valid_files_default_limits(data: bytes) -> None:
    _check(data, ImageLimits())


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzz_seeds_are_valid_images(name: str) -> None:
    """The mutations start from files that decode, so the fuzzer explores near real structure."""
    assert decode_image(SEEDS[name], DEEP).rgb.size > 0
