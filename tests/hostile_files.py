"""Hostile and awkward image files, generated deterministically at test time (nothing binary is committed).

Every path that decodes untrusted bytes (scraper, folder import, bot, `namae classify`) can run the
same corpus through its own entry point:

    from tests.hostile_files import EXPECTED, HOSTILE_CASES
    for name, make in HOSTILE_CASES.items():
        data = make()            # bytes, same every call (cached)
        EXPECTED[name]           # the ImageRejected.reason under default ImageLimits(), or None if accepted

Polyglots, decided: `polyglot_jpeg_zip` (a valid JPEG with a ZIP archive appended after EOI) is accepted,
because its pixels are a valid picture; what is stored is the image up to its end marker
(`media.trailing.strip_trailing_data`), so the archive is never kept or served on. `polyglot_gif_js` (a GIF header that
is also JavaScript, `GIF89a/*...*/=alert(1)`) is rejected: the `/*` it needs makes the width 10799 and
the height is 1, so it is a 10799x1 strip (`bad_aspect`).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image

# The upright picture for the EXIF cases: four solid quadrants, wider than tall, so each of the eight
# orientations gives a different arrangement.
EXIF_SIZE = (64, 48)  # width, height
QUADRANT_COLOURS = {
    "top_left": (220, 30, 30),
    "top_right": (30, 200, 30),
    "bottom_left": (30, 30, 220),
    "bottom_right": (230, 220, 40),
}
ANIMATION_COLOURS = [(230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 230, 20), (200, 20, 200)]
PALETTE_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
PALETTE_ALPHA = [0, 128, 255]
CMYK_QUADRANTS = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]
CMYK_EXPECTED_RGB = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0)]


# --- building blocks -------------------------------------------------------------------------------


def pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful RGB test picture (compresses like a real one, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.12), rng.uniform(0.02, 0.12), rng.uniform(0, 6.28)
        channels.append(127.5 + 120 * np.sin(fx * x + fy * y + phase))
    noise = rng.normal(0, 6, size=(height, width, 3))
    return np.clip(np.stack(channels, axis=2) + noise, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray | Image.Image, fmt: str, **params: object) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def craft_png(
    width: int,
    height: int,
    bit_depth: int,
    colour_type: int,
    idat: bytes,
    *,
    before_idat: Iterable[bytes] = (),
    after_idat: Iterable[bytes] = (),
) -> bytes:
    """A PNG from its parts: `idat` is the zlib stream, the chunk lists are finished chunks."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            png_chunk(b"IHDR", header),
            *before_idat,
            png_chunk(b"IDAT", idat),
            *after_idat,
            png_chunk(b"IEND", b""),
        ]
    )


def png_scanlines(samples: np.ndarray) -> bytes:
    """Unfiltered PNG scanlines (filter byte 0) from an HxWxC array of big-endian-ready samples."""
    height = samples.shape[0]
    rows = samples.reshape(height, -1)
    if rows.dtype == np.uint16:
        rows = rows.astype(">u2").view(np.uint8).reshape(height, -1)
    return np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()


def compressed_zeros(total: int, *, block: int = 1 << 20) -> bytes:
    """zlib stream of `total` zero bytes, made without ever holding them all."""
    compressor = zlib.compressobj(9)
    zeros = bytes(block)
    parts = []
    for start in range(0, total, block):
        parts.append(compressor.compress(zeros[: min(block, total - start)]))
    parts.append(compressor.flush())
    return b"".join(parts)


def gif_bytes(width: int, height: int, frames: Iterable[tuple[int, int, int]]) -> bytes:
    """An animated GIF of 1x1 red dots at the given (x, y, palette index) positions on a white canvas."""
    out = [b"GIF89a", struct.pack("<HHBBB", width, height, 0xF0, 0, 0)]
    out.append(bytes([255, 255, 255, 255, 0, 0]))  # global colour table: white, red
    out.append(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")
    for x, y, index in frames:
        out.append(b"\x21\xf9\x04\x04\x02\x00\x00\x00")  # graphic control: keep frame, 20 ms
        out.append(b"\x2c" + struct.pack("<HHHHB", x, y, 1, 1, 0))
        # LZW, minimum code size 2: clear (4), the pixel, end (5), packed in 3-bit codes.
        out.append(bytes([0x02, 0x02, 0x44 | (index << 3), 0x01, 0x00]))
    out.append(b"\x3b")
    return b"".join(out)


def exif_upright() -> np.ndarray:
    """The picture every EXIF case must decode to."""
    width, height = EXIF_SIZE
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = QUADRANT_COLOURS["top_left"]
    pixels[: height // 2, width // 2 :] = QUADRANT_COLOURS["top_right"]
    pixels[height // 2 :, : width // 2] = QUADRANT_COLOURS["bottom_left"]
    pixels[height // 2 :, width // 2 :] = QUADRANT_COLOURS["bottom_right"]
    return pixels


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer honouring EXIF `orientation` shows `upright`.

    Straight from the EXIF 2.3 definitions, e.g. 6 = "the 0th row is the visual right-hand side and
    the 0th column the visual top", i.e. the stored picture is the upright one turned 90 degrees
    counter-clockwise.
    """
    stored = {
        1: lambda u: u,
        2: lambda u: u[:, ::-1],
        3: lambda u: u[::-1, ::-1],
        4: lambda u: u[::-1],
        5: lambda u: u.transpose(1, 0, 2),
        6: lambda u: np.rot90(u, 1),
        7: lambda u: np.rot90(u[::-1], 1),
        8: lambda u: np.rot90(u, 3),
    }[orientation](upright)
    return np.ascontiguousarray(stored)


def exif_oriented_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = stored_for_orientation(exif_upright(), orientation)
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


# --- the cases ---------------------------------------------------------------------------------------


def empty() -> bytes:
    return b""


@functools.cache
def valid_jpeg() -> bytes:
    return encode(pattern(96, 128, seed=1), "JPEG", quality=90)


@functools.cache
def valid_png() -> bytes:
    return encode(pattern(96, 128, seed=2), "PNG")


@functools.cache
def truncated_jpeg() -> bytes:
    data = encode(pattern(128, 128, seed=3), "JPEG", quality=90)
    return data[: len(data) * 6 // 10]


@functools.cache
def truncated_png() -> bytes:
    data = encode(pattern(128, 128, seed=4), "PNG")
    return data[: len(data) * 6 // 10]


@functools.cache
def truncated_gif() -> bytes:
    data = encode(pattern(64, 64, seed=5), "GIF")
    return data[: len(data) // 2]


@functools.cache
def png_bomb_100000x100000() -> bytes:
    """Declares 10^10 pixels (30 GB as RGB) in a 1 KB file; the first MB of rows is really there."""
    return craft_png(100_000, 100_000, 8, 2, compressed_zeros(1 << 20))


@functools.cache
def png_bomb_8000x8000() -> bytes:
    """A complete 8000x8000 greyscale PNG of zeros: 64 MB of pixels from ~64 KB. Above our default
    40 MP limit but below Pillow's own 89 MP warning, so only our check stands in its way."""
    return craft_png(8000, 8000, 8, 0, compressed_zeros(8000 * 8001))


@functools.cache
def gif_bomb_65535x65535() -> bytes:
    return gif_bytes(65535, 65535, [(0, 0, 1)])


def jpeg_with_declared_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header (SOF0) is rewritten to declare another size."""
    data = bytearray(valid_jpeg())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@functools.cache
def jpeg_bomb_30000x30000() -> bytes:
    """900 MP declared: past Pillow's own hard limit (2 x 89 MP), so Pillow's error is what stops it."""
    return jpeg_with_declared_size(30_000, 30_000)


@functools.cache
def jpeg_bomb_7000x7000() -> bytes:
    """49 MP declared: under Pillow's 89 MP warning, over our 40 MP default."""
    return jpeg_with_declared_size(7000, 7000)


def webp_bomb_9000x9000() -> bytes:
    """A VP8X header declaring a 9000x9000 canvas (81 MP, no Pillow warning). libwebp's animation
    decoder, which Pillow uses for every WebP, allocates two canvases of 324 MB on creation."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (8999).to_bytes(3, "little") * 2
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


@functools.cache
def png_huge_ztxt() -> bytes:
    """A small valid picture carrying a zTXt and a compressed iTXt of 50 MB each (about 100 KB on disk)."""
    pixels = pattern(64, 64, seed=6)
    text = compressed_zeros(50 * 1024 * 1024)
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + text)
    itxt = png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + text)
    return craft_png(64, 64, 8, 2, zlib.compress(png_scanlines(pixels)), before_idat=[ztxt, itxt])


@functools.cache
def png_many_chunks() -> bytes:
    """200 zTXt chunks of 1 MB decompressed each (Pillow alone would keep 64 MB of them) and 10,000
    small tEXt chunks, before and after the pixels."""
    pixels = pattern(64, 64, seed=7)
    megabyte = compressed_zeros(1 << 20)
    big = [png_chunk(b"zTXt", f"k{i}".encode() + b"\x00\x00" + megabyte) for i in range(200)]
    small = [png_chunk(b"tEXt", f"key{i}".encode() + b"\x00" + b"v" * 40) for i in range(10_000)]
    idat = zlib.compress(png_scanlines(pixels))
    return craft_png(64, 64, 8, 2, idat, before_idat=big + small[:5000], after_idat=small[5000:])


@functools.cache
def gif_10000_frames() -> bytes:
    """10,000 frames of one moving dot on a 64x64 canvas, about 230 KB."""
    return gif_bytes(64, 64, [(i % 64, (i // 64) % 64, 1) for i in range(10_000)])


@functools.cache
def gif_3000_frames_1000x1000() -> bytes:
    """3,000 one-pixel frames on a 1000x1000 canvas, about 60 KB: seeking to the last frame would
    composite 3 billion canvas pixels, so only the frames within the seek budget may be sampled."""
    return gif_bytes(1000, 1000, [(i % 1000, (i * 7) % 1000, 1) for i in range(3_000)])


@functools.cache
def gif_animated_5_frames() -> bytes:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ANIMATION_COLOURS]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


@functools.cache
def cmyk_jpeg() -> bytes:
    """64x64 CMYK JPEG (as Photoshop writes, Adobe marker): quadrants cyan, magenta, yellow, black."""
    image = Image.new("CMYK", (64, 64))
    for index, ink in enumerate(CMYK_QUADRANTS):
        x, y = (index % 2) * 32, (index // 2) * 32
        image.paste(ink, (x, y, x + 32, y + 32))
    return encode(image, "JPEG", quality=95)


def grey16_values() -> np.ndarray:
    """64x64 16-bit ramp covering 0..65535 (rows identical)."""
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)
    return np.tile(ramp, (64, 1))


def rgb48_values() -> np.ndarray:
    values = grey16_values()
    return np.stack([values, values[:, ::-1], np.full_like(values, 0x8000)], axis=2)


@functools.cache
def png_16bit_grey() -> bytes:
    """Written by Pillow as mode I;16."""
    return encode(Image.fromarray(grey16_values()), "PNG")


@functools.cache
def png_48bit_rgb() -> bytes:
    """Pillow cannot write 16-bit RGB, so the bytes are crafted (colour type 2, depth 16)."""
    return craft_png(64, 64, 16, 2, zlib.compress(png_scanlines(rgb48_values())))


@functools.cache
def png_64bit_rgba() -> bytes:
    """16-bit RGBA (colour type 6): the left half opaque, the right half fully transparent."""
    alpha = np.zeros((64, 64), np.uint16)
    alpha[:, :32] = 65535
    samples = np.concatenate([rgb48_values(), alpha[:, :, None]], axis=2)
    return craft_png(64, 64, 16, 6, zlib.compress(png_scanlines(samples)))


@functools.cache
def png_palette_transparency() -> bytes:
    """Palette PNG with tRNS: thirds of index 0 (alpha 0), 1 (alpha 128), 2 (alpha 255)."""
    indices = np.zeros((48, 96), np.uint8)
    indices[:, 32:64] = 1
    indices[:, 64:] = 2
    image = Image.fromarray(indices, mode="P")
    image.putpalette([channel for colour in PALETTE_COLOURS for channel in colour])
    return encode(image, "PNG", transparency=bytes(PALETTE_ALPHA))


@functools.cache
def png_alpha() -> bytes:
    """RGBA: a colour picture whose alpha falls from 255 on the left to 0 on the right."""
    rgb = pattern(64, 96, seed=8)
    alpha = np.tile(np.linspace(255, 0, 96).round().astype(np.uint8), (64, 1))
    return encode(np.dstack([rgb, alpha]), "PNG")


def png_alpha_expected() -> np.ndarray:
    rgb = pattern(64, 96, seed=8).astype(np.uint16)
    alpha = np.tile(np.linspace(255, 0, 96).round().astype(np.uint16), (64, 1))[:, :, None]
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def svg_as_jpeg() -> bytes:
    """What a server sends as `Content-Type: image/jpeg` when the file is really an SVG with a script."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000">'
        b"<script>alert(document.domain)</script>"
        b'<rect width="100%" height="100%" fill="red"/></svg>\n'
    )


def html_page() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
        b"<body><h1>Not Found</h1><img src=x onerror=alert(1)></body></html>\n"
    )


def plain_text() -> bytes:
    return b"Yotsuba Nakano (Gotoubun no Hanayome) - fanart by someone\n" * 20


def random_bytes() -> bytes:
    return np.random.default_rng(9).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def tiff_image() -> bytes:
    return encode(pattern(64, 64, seed=10), "TIFF")


@functools.cache
def polyglot_jpeg_zip() -> bytes:
    """A valid JPEG followed by a ZIP archive holding a script (a JPEG that is also a .zip)."""
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("payload.js", date_time=(2024, 1, 1, 0, 0, 0))
        bundle.writestr(info, "alert(document.domain)\n")
    return valid_jpeg() + archive.getvalue()


def polyglot_gif_js() -> bytes:
    """Parses as JavaScript (`GIF89a` is an identifier, then a comment, then code) and starts like a GIF."""
    return (
        b"GIF89a/*\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        b"*/=1;alert(document.domain);//"
    )


def one_pixel() -> bytes:
    return encode(np.array([[[200, 30, 30]]], np.uint8), "PNG")


@functools.cache
def strip_20000x20() -> bytes:
    return encode(np.tile(pattern(20, 200, seed=11), (1, 100, 1)), "PNG")


HOSTILE_CASES: dict[str, Callable[[], bytes]] = {
    "empty": empty,
    "valid_jpeg": valid_jpeg,
    "valid_png": valid_png,
    "truncated_jpeg": truncated_jpeg,
    "truncated_png": truncated_png,
    "truncated_gif": truncated_gif,
    "png_bomb_100000x100000": png_bomb_100000x100000,
    "png_bomb_8000x8000": png_bomb_8000x8000,
    "gif_bomb_65535x65535": gif_bomb_65535x65535,
    "jpeg_bomb_30000x30000": jpeg_bomb_30000x30000,
    "jpeg_bomb_7000x7000": jpeg_bomb_7000x7000,
    "webp_bomb_9000x9000": webp_bomb_9000x9000,
    "png_huge_ztxt": png_huge_ztxt,
    "png_many_chunks": png_many_chunks,
    "gif_10000_frames": gif_10000_frames,
    "gif_3000_frames_1000x1000": gif_3000_frames_1000x1000,
    "gif_animated_5_frames": gif_animated_5_frames,
    "cmyk_jpeg": cmyk_jpeg,
    "png_16bit_grey": png_16bit_grey,
    "png_48bit_rgb": png_48bit_rgb,
    "png_64bit_rgba": png_64bit_rgba,
    "png_palette_transparency": png_palette_transparency,
    "png_alpha": png_alpha,
    "svg_as_jpeg": svg_as_jpeg,
    "html_page": html_page,
    "plain_text": plain_text,
    "random_bytes": random_bytes,
    "tiff_image": tiff_image,
    "polyglot_jpeg_zip": polyglot_jpeg_zip,
    "polyglot_gif_js": polyglot_gif_js,
    "one_pixel": one_pixel,
    "strip_20000x20": strip_20000x20,
    **{
        f"exif_orientation_{orientation}": functools.cache(functools.partial(exif_oriented_jpeg, orientation))
        for orientation in range(1, 9)
    },
}

# Outcome under default `ImageLimits()`: the `ImageRejected.reason`, or None when the image is accepted.
EXPECTED: dict[str, str | None] = {
    "empty": "empty",
    "valid_jpeg": None,
    "valid_png": None,
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "truncated_gif": "truncated",
    "png_bomb_100000x100000": "decompression_bomb",
    "png_bomb_8000x8000": "decompression_bomb",
    "gif_bomb_65535x65535": "decompression_bomb",
    "jpeg_bomb_30000x30000": "decompression_bomb",
    "jpeg_bomb_7000x7000": "decompression_bomb",
    "webp_bomb_9000x9000": "decompression_bomb",
    "png_huge_ztxt": None,
    "png_many_chunks": None,
    "gif_10000_frames": None,  # sampled over the frames the seek budget reaches
    "gif_3000_frames_1000x1000": None,  # likewise, a few hundred frames in
    "gif_animated_5_frames": None,
    "cmyk_jpeg": None,
    "png_16bit_grey": None,
    "png_48bit_rgb": None,
    "png_64bit_rgba": None,
    "png_palette_transparency": None,
    "png_alpha": None,
    "svg_as_jpeg": "not_an_image",
    "html_page": "not_an_image",
    "plain_text": "not_an_image",
    "random_bytes": "not_an_image",
    "tiff_image": "unsupported_format",
    "polyglot_jpeg_zip": None,
    "polyglot_gif_js": "bad_aspect",
    "one_pixel": "too_small",
    "strip_20000x20": "bad_aspect",
    **{f"exif_orientation_{orientation}": None for orientation in range(1, 9)},
}
assert EXPECTED.keys() == HOSTILE_CASES.keys()
