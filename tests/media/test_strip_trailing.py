"""`strip_trailing_data`: the bytes of the image itself, without anything appended after its end.

A file that is an image followed by something else (a ZIP behind a JPEG: a polyglot) decodes fine, so
it is accepted; what we store must be only the image. Normal files come back byte for byte, so every
sha256 computed before this existed still names the same file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from catalog.settings import ImageLimits
from media.decode import decode_image
from media.sniff import sniff_format
from media.trailing import strip_trailing_data, without_trailing_data

LIMITS = ImageLimits(reject_greyscale=False, min_side=1)


def picture(seed: int, width: int = 48, height: int = 40) -> Image.Image:
    """Smooth colour with some noise: realistic enough that encoders emit many 0xFF bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=2)
    noise = rng.integers(-40, 40, base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def exif_with_orientation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "a description with \xff\xd9 look-alikes"
    return exif.tobytes()


def icc_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def frames(count: int, seed: int) -> list[Image.Image]:
    return [picture(seed + i, 40, 32) for i in range(count)]


def animated(fmt: str, **options: object) -> bytes:
    first, *rest = frames(4, 70)
    return encoded(first, fmt, save_all=True, append_images=rest, duration=80, loop=0, **options)


def jpeg_with_thumbnail_in_app1() -> bytes:
    """A JPEG whose APP1 segment holds a whole JPEG (SOI...EOI), as camera EXIF thumbnails do."""
    thumbnail = encoded(picture(5, 16, 16), "JPEG")
    main = encoded(picture(6), "JPEG")
    payload = b"Exif\x00\x00" + thumbnail
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return main[:2] + segment + main[2:]


# Every kind of structure each walker has to step over, as Pillow writes it.
VALID: dict[str, Callable[[], bytes]] = {
    "jpeg_baseline": lambda: encoded(picture(1), "JPEG", quality=90),
    "jpeg_progressive": lambda: encoded(picture(2), "JPEG", quality=95, progressive=True),
    "jpeg_optimized_444": lambda: encoded(picture(3), "JPEG", optimize=True, subsampling=0),
    "jpeg_exif_icc": lambda: encoded(
        picture(4), "JPEG", exif=exif_with_orientation(), icc_profile=icc_profile()
    ),
    "jpeg_restart_markers": lambda: encoded(picture(7, 96, 64), "JPEG", restart_marker_blocks=1),
    "jpeg_progressive_restart": lambda: encoded(
        picture(8, 96, 64), "JPEG", progressive=True, restart_marker_rows=1
    ),
    "jpeg_greyscale": lambda: encoded(picture(9).convert("L"), "JPEG"),
    "jpeg_cmyk": lambda: encoded(picture(10).convert("CMYK"), "JPEG"),
    "jpeg_thumbnail_in_app1": jpeg_with_thumbnail_in_app1,
    "png_rgb": lambda: encoded(picture(11), "PNG"),
    "png_palette_transparency": lambda: encoded(picture(12).convert("P"), "PNG", transparency=0),
    "png_icc_exif": lambda: encoded(
        picture(13), "PNG", icc_profile=icc_profile(), exif=exif_with_orientation()
    ),
    "png_animated": lambda: animated("PNG"),
    "gif_still": lambda: encoded(picture(14), "GIF"),
    "gif_animated": lambda: animated("GIF"),
    "gif_animated_local_palettes": lambda: animated("GIF", optimize=False, disposal=2),
    "gif_comment": lambda: encoded(picture(15), "GIF", comment=b"hello;\x3b world" * 30),
    "webp_lossy": lambda: encoded(picture(16), "WEBP", quality=80),
    "webp_lossless": lambda: encoded(picture(17), "WEBP", lossless=True),
    "webp_alpha": lambda: encoded(picture(18).convert("RGBA"), "WEBP"),
    "webp_exif_icc": lambda: encoded(
        picture(19), "WEBP", exif=exif_with_orientation(), icc_profile=icc_profile()
    ),
    "webp_animated": lambda: animated("WEBP"),
}
_CACHE: dict[str, bytes] = {}


def valid(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = VALID[name]()
    return _CACHE[name]


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(zipfile.ZipInfo("payload.js", (2024, 1, 1, 0, 0, 0)), "alert(document.domain)\n")
    return buffer.getvalue()


# Junk that looks like each format's end marker, to catch a walker that searches instead of walking.
TRICKY_JUNK = [
    zip_archive(),
    b"\xff\xd9" * 3 + b"<script>alert(1)</script>",
    b"\x00\x00\x00\x00IEND\xaeB`\x82PK\x03\x04",
    b";;;\x3b\x00\x21\xf9",
    b"RIFF\x04\x00\x00\x00WEBP",
    b"\xff",
    b"\x00",
]


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_normal_file_comes_back_byte_for_byte(name: str) -> None:
    data = valid(name)
    assert strip_trailing_data(data, sniff_format(data)) == data
    assert without_trailing_data(data) == data


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("junk", TRICKY_JUNK, ids=range(len(TRICKY_JUNK)))
def test_anything_appended_is_cut_off(name: str, junk: bytes) -> None:
    data = valid(name)
    fmt = sniff_format(data)
    assert fmt is not None
    assert strip_trailing_data(data + junk, fmt) == data
    assert strip_trailing_data(data + junk, fmt) == data


@pytest.mark.parametrize("name", ["jpeg_progressive", "png_animated", "gif_animated", "webp_animated"])
def test_the_stripped_file_decodes_to_the_same_pixels(name: str) -> None:
    data = valid(name)
    polyglot = data + zip_archive()
    before, after = decode_image(polyglot, LIMITS), decode_image(without_trailing_data(polyglot), LIMITS)
    assert np.array_equal(before.rgb, after.rgb)
    assert before.frame_count == after.frame_count


def test_the_hostile_polyglot_loses_its_archive() -> None:
    from tests.hostile_files import polyglot_gif_js, polyglot_jpeg_zip, valid_jpeg

    stripped = without_trailing_data(polyglot_jpeg_zip())
    assert stripped == valid_jpeg()
    assert b"PK\x03\x04" not in stripped
    assert b"alert" not in without_trailing_data(polyglot_gif_js())


@pytest.mark.parametrize("fmt", ["avif", "bmp", None, "tiff"])
def test_formats_without_a_walker_come_back_unchanged(fmt: str | None) -> None:
    data = encoded(picture(20), "BMP") + zip_archive()
    assert strip_trailing_data(data, fmt) == data


@pytest.mark.parametrize(
    "name", ["jpeg_baseline", "jpeg_progressive", "png_rgb", "gif_animated", "webp_lossy"]
)
def test_a_truncated_file_comes_back_unchanged(name: str) -> None:
    data = valid(name)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 1):
        assert strip_trailing_data(data[:cut], sniff_format(data)) == data[:cut]


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x01JFIF"),  # segment length below 2
        ("jpeg", b"\xff\xd8\xff\xe0\xff\xffJFIF"),  # segment runs past the end
        ("jpeg", b"\xff\xd8garbage\xff\xd9tail"),  # bytes between segments
        ("jpeg", b"\xff\xd8\xff\xda\x00\x02scan data without an end"),
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x00I3ND\x00\x00\x00\x00tail"),  # not a chunk type
        ("png", b"\x89PNG\r\n\x1a\n\xff\xff\xff\xffIEND\x00\x00\x00\x00"),  # absurd length
        ("gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99;tail"),  # unknown block
        ("gif", b"GIF89a"),
        ("webp", b"RIFF\x10\x00\x00\x00WEBPVP8 \xff\x00\x00\x00tail"),  # chunk overruns the RIFF size
        ("webp", b"RIFF\xff\xff\xff\x7fWEBPVP8 "),
        ("jpeg", b""),
        ("png", b"not a png at all"),
    ],
)
def test_a_malformed_structure_comes_back_unchanged(fmt: str, data: bytes) -> None:
    assert strip_trailing_data(data, fmt) == data


HYPOTHESIS = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def generated_images(draw: st.DrawFn) -> bytes:
    """Small images of any size and content in each walked format, with the encoder's options."""
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    fmt, options = draw(
        st.sampled_from(
            [
                ("JPEG", {}),
                ("JPEG", {"progressive": True}),
                ("JPEG", {"quality": 100, "subsampling": 0}),
                ("PNG", {}),
                ("GIF", {}),
                ("WEBP", {}),
                ("WEBP", {"lossless": True}),
            ]
        )
    )
    return encoded(image, fmt, **options)


@HYPOTHESIS
@given(
    data=st.one_of(generated_images(), st.sampled_from(sorted(VALID)).map(valid)),
    junk=st.binary(max_size=600),
)
def test_any_valid_image_with_any_junk_appended_strips_to_the_image(data: bytes, junk: bytes) -> None:
    fmt = sniff_format(data)
    assert strip_trailing_data(data, fmt) == data
    assert strip_trailing_data(data + junk, fmt) == data


@HYPOTHESIS
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from(
                [
                    b"\xff\xd8",
                    b"\xff\xd8\xff\xda\x00\x02",
                    b"\x89PNG\r\n\x1a\n",
                    b"GIF89a",
                    b"RIFF\x20\x00\x00\x00WEBP",
                ]
            ),
            st.binary(max_size=400),
        ),
    ),
    fmt=st.sampled_from(["jpeg", "png", "gif", "webp", "avif", "bmp", "", None]),
)
def test_random_bytes_never_raise_and_only_lose_a_tail(data: bytes, fmt: str | None) -> None:
    stripped = strip_trailing_data(data, fmt)
    assert data.startswith(stripped) and (stripped or not data)
    assert strip_trailing_data(stripped, fmt) == stripped


@HYPOTHESIS
@given(
    name=st.sampled_from(sorted(VALID)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_damaged_images_never_raise(name: str, cut: float, flips: list[int]) -> None:
    data = bytearray(valid(name)[: max(1, int(len(valid(name)) * cut))])
    for flip in flips:
        data[flip % len(data)] ^= 0xA5
    stripped = strip_trailing_data(bytes(data), sniff_format(bytes(data)))
    assert bytes(data).startswith(stripped)
