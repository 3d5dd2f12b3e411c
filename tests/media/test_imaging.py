"""decode_image and friends on real files: formats, conversions, orientation, animation, limits."""

from __future__ import annotations

import io
import itertools
import pickle
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps, features

from catalog.settings import ImageLimits
from media.decode import MAX_JPEG_SCANS, REASONS, DecodedImage, ImageRejected, decode_image
from media.encode import encode_jpeg, encode_png
from media.sniff import sniff_format
from tests import hostile_files as hf

LIMITS = ImageLimits()


def _reason(data: bytes, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, limits)
    return caught.value.reason


def _decode(data: bytes, limits: ImageLimits = LIMITS) -> DecodedImage:
    return decode_image(data, limits)


# --- sniffing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("BMP", {}), ("AVIF", {})],
)
def test_sniff_format_recognises_each_supported_format(fmt: str, params: dict[str, object]) -> None:
    data = hf.encode(hf.pattern(40, 40), fmt, **params)
    assert sniff_format(data) == fmt.lower()


@pytest.mark.parametrize(
    "data",
    [
        hf.svg_as_jpeg(),
        hf.html_page(),
        hf.plain_text(),
        b"BMW is not a bitmap, even though it starts with BM",
        b"",
        b"\xff\xd8",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    ],
)
def test_sniff_format_refuses_non_images_and_other_formats(data: bytes) -> None:
    assert sniff_format(data) is None


def test_format_comes_from_bytes_not_from_what_the_sender_claims() -> None:
    png = hf.valid_png()
    assert _decode(png).format == "png"  # even if it arrived as "photo.jpg" / image/jpeg
    assert _reason(hf.svg_as_jpeg()) == "not_an_image"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (hf.tiff_image(), "unsupported_format"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "unsupported_format"),
        (b"8BPS" + bytes(60), "unsupported_format"),
        (hf.random_bytes(), "not_an_image"),
    ],
)
def test_known_but_unsupported_formats_are_told_apart_from_non_images(data: bytes, reason: str) -> None:
    assert _reason(data) == reason


# --- conversions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg_decodes_upright(orientation: int) -> None:
    decoded = _decode(hf.exif_oriented_jpeg(orientation))
    upright = hf.exif_upright()
    assert decoded.rgb.shape == upright.shape
    assert (decoded.width, decoded.height) == hf.EXIF_SIZE
    # JPEG blurs the quadrant edges; compare the quadrant interiors.
    height, width = upright.shape[:2]
    for y in (height // 4, 3 * height // 4):
        for x in (width // 4, 3 * width // 4):
            assert np.abs(decoded.rgb[y, x].astype(int) - upright[y, x]).max() <= 12, (orientation, x, y)
    # Pillow's own exif_transpose is an independent reference for the same file.
    reference = np.asarray(
        ImageOps.exif_transpose(Image.open(io.BytesIO(hf.exif_oriented_jpeg(orientation))))
    )
    assert np.array_equal(decoded.rgb, reference)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_is_exact(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = hf.stored_for_orientation(hf.exif_upright(), orientation)
    decoded = _decode(hf.encode(stored, "PNG", exif=exif.tobytes()))
    assert np.array_equal(decoded.rgb, hf.exif_upright())


def test_alpha_is_composited_on_white() -> None:
    assert np.array_equal(_decode(hf.png_alpha()).rgb, hf.png_alpha_expected())


def test_palette_transparency_is_composited_on_white() -> None:
    rgb = _decode(hf.png_palette_transparency()).rgb
    assert tuple(rgb[10, 10]) == (255, 255, 255)  # index 0: fully transparent red
    assert tuple(rgb[10, 40]) == (127, 255, 127)  # index 1: green at alpha 128
    assert tuple(rgb[10, 80]) == (0, 0, 255)  # index 2: opaque blue


def test_cmyk_jpeg_becomes_the_right_rgb() -> None:
    rgb = _decode(hf.cmyk_jpeg()).rgb
    for index, expected in enumerate(hf.CMYK_EXPECTED_RGB):
        y, x = (index // 2) * 32 + 16, (index % 2) * 32 + 16
        assert np.abs(rgb[y, x].astype(int) - expected).max() <= 10, (index, rgb[y, x])


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    assert Image.open(io.BytesIO(hf.png_16bit_grey())).mode == "I;16"
    rgb = _decode(hf.png_16bit_grey()).rgb
    expected = (hf.grey16_values() >> 8).astype(np.uint8)
    assert np.array_equal(rgb[:, :, 0], expected)
    assert np.array_equal(rgb[:, :, 0], rgb[:, :, 2])
    assert rgb[0, 32, 0] not in (0, 255)  # Pillow's convert("L") would give 255 here


def test_48_bit_rgb_keeps_the_high_byte() -> None:
    rgb = _decode(hf.png_48bit_rgb()).rgb
    assert np.array_equal(rgb, (hf.rgb48_values() >> 8).astype(np.uint8))


def test_64_bit_rgba_is_scaled_and_composited() -> None:
    rgb = _decode(hf.png_64bit_rgba()).rgb
    expected = (hf.rgb48_values() >> 8).astype(np.uint8)
    assert np.array_equal(rgb[:, :32], expected[:, :32])
    assert (rgb[:, 32:] == 255).all()


@pytest.mark.parametrize("mode", ["L", "LA", "1", "P", "RGBA"])
def test_other_modes_become_rgb(mode: str) -> None:
    image = Image.fromarray(hf.pattern(48, 48, seed=3)).convert(mode)
    decoded = _decode(hf.encode(image, "PNG"))
    assert decoded.rgb.shape == (48, 48, 3) and decoded.rgb.dtype == np.uint8


def test_bmp_and_webp_and_avif_decode() -> None:
    pixels = hf.pattern(40, 56, seed=12)
    assert np.array_equal(_decode(hf.encode(pixels, "BMP")).rgb, pixels)
    assert np.array_equal(_decode(hf.encode(pixels, "WEBP", lossless=True)).rgb, pixels)
    if features.check("avif"):  # the installed Pillow reads AVIF
        decoded = _decode(hf.encode(pixels, "AVIF", quality=90))
        assert decoded.format == "avif" and decoded.rgb.shape == pixels.shape
        assert np.abs(decoded.rgb.astype(int) - pixels).mean() < 12
    else:
        assert (
            _reason(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(64)) == "unsupported_format"
        )


def test_polyglot_jpeg_with_zip_tail_is_accepted_as_its_pixels() -> None:
    decoded = _decode(hf.polyglot_jpeg_zip())
    assert np.array_equal(decoded.rgb, _decode(hf.valid_jpeg()).rgb)
    assert b"PK\x03\x04" not in encode_png(decoded.rgb)  # re-encoding drops the archive


def test_png_with_an_archive_after_iend_decodes() -> None:
    data = hf.valid_png() + b"PK\x03\x04" + bytes(100)
    assert np.array_equal(_decode(data).rgb, _decode(hf.valid_png()).rgb)


# --- animation --------------------------------------------------------------------------------------


def _animation(fmt: str, **params: object) -> bytes:
    frames = [Image.new("RGB", (64, 64), colour) for colour in hf.ANIMATION_COLOURS]
    return hf.encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, **params)


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {"loop": 0}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animation_samples_first_and_evenly_spaced_frames(fmt: str, params: dict[str, object]) -> None:
    decoded = _decode(_animation(fmt, **params))
    assert decoded.animated and decoded.frame_count == 5
    assert decoded.frames[0] is decoded.rgb
    # 5 frames, 4 samples: indices 0, 1, 3, 4
    colours = [tuple(int(c) for c in frame[32, 32]) for frame in decoded.frames]
    expected = [hf.ANIMATION_COLOURS[i] for i in (0, 1, 3, 4)]
    for got, want in zip(colours, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8, (colours, expected)


def test_max_frames_sampled_one_keeps_only_the_first_frame() -> None:
    decoded = _decode(_animation("GIF"), ImageLimits(max_frames_sampled=1))
    assert decoded.frame_count == 5 and len(decoded.frames) == 1


def test_still_image_has_one_frame() -> None:
    decoded = _decode(hf.valid_jpeg())
    assert not decoded.animated and decoded.frame_count == 1 and decoded.frames == [decoded.rgb]


def test_a_long_gif_is_sampled_evenly_over_the_frames_the_seek_budget_reaches() -> None:
    """Issue 15 item 15: a 10,000-frame GIF was refused as too_many_frames; it is answered from
    evenly spaced frames, as far into it as the seek budget reaches, each the frame it says it is."""
    decoded = _decode(hf.gif_10000_frames())
    assert decoded.frame_count == 10_000 and len(decoded.frames) == 4
    indices = decoded.frame_indices
    assert indices[0] == 0 and len(set(indices)) == 4
    steps = [b - a for a, b in itertools.pairwise(indices)]
    assert max(steps) - min(steps) <= 1, indices  # evenly spaced
    budget_frames = ImageLimits().max_animation_pixels // (64 * 64)
    assert indices[-1] < budget_frames  # never further than the budget allows
    for index, frame in zip(indices, decoded.frames, strict=True):
        # each sampled frame has its own dot, and the earlier dots are kept
        assert tuple(frame[(index // 64) % 64, index % 64]) == (255, 0, 0)


def test_a_larger_seek_budget_reaches_the_last_frame() -> None:
    decoded = _decode(hf.gif_10000_frames(), ImageLimits(max_animation_pixels=10**9))
    assert decoded.frame_indices == (0, 3333, 6666, 9999)
    assert tuple(decoded.frames[-1][(9999 // 64) % 64, 9999 % 64]) == (255, 0, 0)


@pytest.mark.parametrize(("fmt", "params"), [("GIF", {"loop": 0}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_frames_beyond_the_scan_limit_are_left_out_not_refused(fmt: str, params: dict[str, object]) -> None:
    decoded = _decode(_animation(fmt, **params), ImageLimits(max_frames_scanned=3))
    assert decoded.animated and decoded.frame_indices == (0, 1, 2)


# --- limits -------------------------------------------------------------------------------------------


def test_byte_limit_is_checked_before_anything_else() -> None:
    data = hf.valid_png()
    assert _reason(data, ImageLimits(max_bytes=len(data) - 1)) == "too_large"
    assert _decode(data, ImageLimits(max_bytes=len(data))).format == "png"


def test_pixel_limit_is_inclusive() -> None:
    data = hf.valid_png()  # 128x96
    assert _decode(data, ImageLimits(max_pixels=128 * 96)).width == 128
    assert _reason(data, ImageLimits(max_pixels=128 * 96 - 1)) == "decompression_bomb"


def test_size_and_aspect_limits() -> None:
    assert _reason(hf.encode(hf.pattern(31, 64), "PNG")) == "too_small"
    assert _decode(hf.encode(hf.pattern(32, 64), "PNG")).height == 32
    assert _reason(hf.encode(hf.pattern(40, 400), "PNG")) == "bad_aspect"
    assert _decode(hf.encode(hf.pattern(40, 320), "PNG")).width == 320


def test_jpeg_with_absurd_scan_count_is_refused_before_decoding() -> None:
    data = hf.valid_jpeg()
    padded = data[:-2] + b"\xff\xda" * (MAX_JPEG_SCANS + 1) + data[-2:]
    assert _reason(padded) == "corrupt"


def test_png_with_a_bad_crc_is_corrupt() -> None:
    data = bytearray(hf.valid_png())
    data[29] ^= 0xFF  # inside the IHDR's CRC
    assert _reason(bytes(data)) == "corrupt"


def test_bytearray_and_memoryview_are_accepted() -> None:
    data = hf.valid_png()
    assert _decode(bytearray(data)).format == "png"
    assert _decode(memoryview(data)).format == "png"  # type: ignore[arg-type]


# --- encoders and the error type ----------------------------------------------------------------------


def test_png_round_trip_is_exact_and_deterministic() -> None:
    pixels = hf.pattern(50, 70, seed=21)
    first = encode_png(pixels)
    assert first == encode_png(pixels.copy())
    assert np.array_equal(_decode(first).rgb, pixels)


def test_jpeg_encoding_is_deterministic_and_close() -> None:
    pixels = hf.pattern(50, 70, seed=22)
    first = encode_jpeg(pixels)
    assert first == encode_jpeg(pixels.copy())
    assert encode_jpeg(pixels, quality=50) != first
    assert b"Exif" not in first
    assert np.abs(_decode(first).rgb.astype(int) - pixels).mean() < 6
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(pixels, quality=0)


def test_encoders_refuse_wrong_arrays() -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_png(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((10, 10, 3), np.float32))


def test_image_rejected_carries_reason_and_sentence_and_pickles() -> None:
    error = ImageRejected("truncated", "The PNG image is truncated.")
    assert str(error) == "The PNG image is truncated."
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, str(copy)) == (error.reason, error.detail, str(error))
    with pytest.raises(ValueError, match="unknown rejection reason"):
        ImageRejected("nope", "x")
    assert {"empty", "corrupt", "greyscale"} <= REASONS


def test_webp_declared_size_is_read_for_each_bitstream_kind() -> None:
    for params in ({"lossless": True}, {"lossless": False, "quality": 80}):
        data = hf.encode(hf.pattern(40, 56), "WEBP", **params)
        decoded = _decode(data)
        assert (decoded.width, decoded.height) == (56, 40)
        assert _reason(data, ImageLimits(max_pixels=56 * 40 - 1)) == "decompression_bomb"
    vp8x = hf.webp_bomb_9000x9000()
    assert struct.unpack_from("<I", vp8x, 4)[0] == len(vp8x) - 8


# --- reduced-scale JPEG decoding (the bot) ---------------------------------------------------------


def _big_jpeg(width: int, height: int, orientation: int | None = None) -> tuple[bytes, np.ndarray]:
    pixels = hf.pattern(height, width, seed=4)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue(), pixels


def test_draft_decodes_a_big_jpeg_at_reduced_scale_close_to_a_full_resize() -> None:
    data, pixels = _big_jpeg(3000, 2000)
    small = decode_image(data, LIMITS, draft_long_side=640)
    # 3000 / 640 allows 1/4 (750 px) but not 1/8 (375 px, under the requested side).
    assert (small.width, small.height) == (750, 500)
    assert small.rgb.shape == (500, 750, 3)
    assert (small.full_width, small.full_height, small.scale) == (3000, 2000, 0.25)
    reference = np.asarray(Image.fromarray(pixels).resize((750, 500), Image.Resampling.BOX))
    assert np.abs(small.rgb.astype(int) - reference).mean() < 6


def test_draft_leaves_small_jpegs_and_other_formats_at_full_size() -> None:
    data, _ = _big_jpeg(1200, 800)
    assert decode_image(data, LIMITS, draft_long_side=640).width == 1200  # under twice the side
    buffer = io.BytesIO()
    Image.fromarray(hf.pattern(2000, 3000, seed=5)).save(buffer, "PNG")
    assert decode_image(buffer.getvalue(), LIMITS, draft_long_side=640).width == 3000


def test_draft_keeps_exif_orientation() -> None:
    data, _ = _big_jpeg(3000, 2000, orientation=6)  # rotate 90 degrees clockwise to be upright
    small = decode_image(data, LIMITS, draft_long_side=640)
    assert (small.width, small.height) == (500, 750)
    assert (small.full_width, small.full_height) == (2000, 3000)
    full = decode_image(data, LIMITS)
    assert (full.width, full.height, full.scale) == (2000, 3000, 1.0)
