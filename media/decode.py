"""Safe image decoding shared by every path that reads pictures: scraper, folder import, trainer, bot, CLI.

Everything that comes from outside (Reddit, Discord attachments, a user's folder) goes through
`decode_image`, which either returns RGB pixels or raises `ImageRejected` with a short machine code
and a sentence for a person. Its time and memory are bounded by `ImageLimits`:

- the byte size is checked first, then the format is sniffed from magic bytes (never from a file name
  or a Content-Type); SVG, HTML, text and unknown bytes are refused before Pillow sees them;
- the declared pixel size is checked before any pixel buffer exists (our own check, independent of
  Pillow's global `MAX_IMAGE_PIXELS`, which is never modified);
- PNG metadata chunks (text, ICC, ...) are dropped before parsing, so a 50 MB zTXt costs nothing;
- animated images are counted by a capped scan and sampled by seeking, evenly over the frames that a
  pixel budget (`ImageLimits.max_animation_pixels`) lets seeking reach: a long animation is answered
  from its reachable part, and a large canvas with many frames cannot make seeking slow;
- Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False (the default): truncated files are refused.
"""

from __future__ import annotations

import io
import logging
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from catalog.settings import ImageLimits

if TYPE_CHECKING:
    from catalog.settings import Settings

logger = logging.getLogger(__name__)

REASONS: Final = frozenset(
    {
        "empty",
        "too_large",
        "not_an_image",
        "unsupported_format",
        "truncated",
        "decompression_bomb",
        "too_small",
        "bad_aspect",
        "too_many_frames",  # no longer raised (long animations are sampled); earlier rows carry it
        "greyscale",
        "corrupt",
    }
)

# Pillow's plugin name for each format we accept; `Image.open(formats=...)` is restricted to it, so the
# sniffed format and the parser that runs always agree.
_PILLOW_FORMATS: Final = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "avif": "AVIF",
    "bmp": "BMP",
}
_AVIF_READABLE: Final = bool(features.check("avif"))

# Structural limits that no genuine file comes near; they keep the pre-parse scans cheap.
MAX_PNG_CHUNKS: Final = 100_000
MAX_PNG_EXIF_BYTES: Final = 64 * 1024
MAX_JPEG_SCANS: Final = 1_000
# Seeking to frame k of a GIF/APNG/WebP decodes every frame before it at canvas size, so sampling only
# reaches as far as `ImageLimits.max_animation_pixels` allows (e.g. 96 frames of a 1000x1000
# animation at the default). Each frame also costs a fixed amount whatever its size, measured at about as much as
# decoding this many canvas pixels (Pillow 13: 90 us a frame of a 64x64 GIF, 2.5 ns a canvas pixel
# of a 320x240 one), so 10,000 tiny frames are not free either.
FRAME_OVERHEAD_PIXELS: Final = 32_768
_COMPOSITE_BAND_PIXELS: Final = 1 << 20

# PNG chunks Pillow needs for pixels, transparency, animation and orientation; everything else
# (tEXt/zTXt/iTXt, iCCP, unknown private chunks) is metadata we never use.
_PNG_KEPT_CHUNKS: Final = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT", b"eXIf"}
)

_BMP_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})

_EXIF_ORIENTATION_TAG: Final = 0x0112


class ImageRejected(Exception):
    """An input that is not a usable image. `reason` is a code from `REASONS`, `detail` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class DecodedImage:
    """Pixels of a decoded image: `rgb` is the upright first frame, `frames` the sampled frames."""

    rgb: np.ndarray
    frames: list[np.ndarray]
    format: str
    width: int
    height: int
    animated: bool
    frame_count: int  # as far as counted: at most `ImageLimits.max_frames_scanned`
    # The file's upright size; larger than (width, height) when decoded at reduced scale (draft).
    full_width: int
    full_height: int
    frame_indices: tuple[int, ...] = (0,)  # which frame of the animation each of `frames` is

    @property
    def scale(self) -> float:
        """Decoded pixels per file pixel: 1.0, or 1/2, 1/4, 1/8 (about) after a draft decode."""
        return self.width / self.full_width


@dataclass(frozen=True)
class DecodeLimits:
    """The one set of decoding settings that every path answering or learning from pictures uses
    (the bot, `namae classify`, the trainer, the demo, the benchmarks), so that they see the same
    pixels: the bounds of `ImageLimits`, and big JPEGs decoded at 1/2, 1/4 or 1/8 scale, never
    below `draft_long_side` (the face detection side: detection would shrink them to it anyway).
    A 12 MP JPEG decodes 5x faster that way (bench/inference.py), a 1.5 MP one 1.7x."""

    image: ImageLimits
    draft_long_side: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(settings.images, settings.faces.detect_max_side)

    @property
    def max_bytes(self) -> int:
        return self.image.max_bytes

    def decode(self, data: bytes) -> DecodedImage:
        return decode_image(data, self.image, draft_long_side=self.draft_long_side)

    def read_file(self, path: Path) -> bytes:
        """A file's bytes, refused as `too_large` from its size before any of it is read (and, for
        what has no size, such as a pipe, after at most one byte more than the limit)."""
        size = path.stat().st_size
        if size > self.max_bytes:
            raise ImageRejected(
                "too_large", f"The file has {size:,} bytes, more than the limit of {self.max_bytes:,}."
            )
        with path.open("rb") as handle:
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise ImageRejected("too_large", f"The file has more than {self.max_bytes:,} bytes, the limit.")
        return data


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None for anything we do not decode."""
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if _ftyp_brands(data) & _AVIF_BRANDS:
        return "avif"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES:
        return "bmp"
    return None


def _ftyp_brands(data: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF `ftyp` box (AVIF, HEIC), empty if there is none."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return set()
    box_size = min(struct.unpack_from(">I", data, 0)[0], len(data), 512)
    brands = {bytes(data[8:12])}
    brands.update(bytes(data[offset : offset + 4]) for offset in range(16, box_size - 3, 4))
    return brands


def _known_unsupported_format(data: bytes) -> str | None:
    """Name of a real image format we deliberately do not decode, to tell it apart from non-images."""
    head = bytes(data[:16])
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"8BPS":
        return "PSD"
    if head[:4] == b"\x00\x00\x01\x00" and len(data) > 6:
        return "ICO"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return "JPEG 2000"
    if head[:4] == b"qoif":
        return "QOI"
    brands = _ftyp_brands(data)
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIC/HEIF"
    return None


def strip_trailing_data(data: bytes, fmt: str | None) -> bytes:
    """The bytes of the image itself: everything after the format's own end (e.g. an appended ZIP) cut off.

    JPEG ends at the EOI that follows the last scan, PNG after IEND's CRC, GIF at its trailer, WebP at
    the end its RIFF header declares. Other formats (AVIF, BMP), unknown formats and any file whose
    structure does not walk cleanly to its end come back unchanged: whether those are acceptable is
    `decode_image`'s decision. Never raises; a normal image's bytes come back as they are.
    """
    data = bytes(data)
    walk = _IMAGE_END_WALKERS.get(fmt or "")
    if walk is None:
        return data
    try:
        end = walk(data)
    except (IndexError, struct.error):  # a structure that runs off the end: not ours to judge
        return data
    return data[:end] if end is not None and 0 < end < len(data) else data


def without_trailing_data(data: bytes) -> bytes:
    """`strip_trailing_data` for the format the magic bytes name: the bytes worth storing."""
    return strip_trailing_data(data, sniff_format(data))


# After a JPEG scan's entropy-coded data, the next marker: 0xFF followed by anything except a stuffed
# zero, a restart marker (RST0-7) or another 0xFF (fill bytes before a marker).
_JPEG_MARKER_AFTER_SCAN: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_end(data: bytes) -> int | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    size, pos = len(data), 2
    while pos < size:
        if data[pos] != 0xFF:
            return None  # bytes between segments: damaged, leave it to the decoder
        while pos + 1 < size and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 1 >= size:
            return None
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            return pos + 2
        if marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0x00, 0xD8) or pos + 4 > size:
            return None
        segment_end = pos + 2 + struct.unpack_from(">H", data, pos + 2)[0]
        if segment_end < pos + 4 or segment_end > size:
            return None
        if marker != 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            pos = segment_end
            continue
        found = _JPEG_MARKER_AFTER_SCAN.search(data, segment_end)
        if found is None:
            return None
        pos = found.start()
    return None


def _png_end(data: bytes) -> int | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    size, pos = len(data), 8
    while pos + 12 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or not kind.isalpha():
            return None
        pos += 12 + length
        if pos > size:
            return None
        if kind == b"IEND":
            return pos
    return None


def _gif_end(data: bytes) -> int | None:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        return None
    size, pos = len(data), 13
    if data[10] & 0x80:  # global colour table
        pos += 3 << ((data[10] & 7) + 1)
    while pos < size:
        block = data[pos]
        if block == 0x3B:  # trailer
            return pos + 1
        if block == 0x21:  # extension: label, then data sub-blocks
            pos = _gif_sub_blocks_end(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size, sub-blocks
            if pos + 10 > size:
                return None
            flags = data[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            pos = _gif_sub_blocks_end(data, pos + 1)
        else:
            return None
        if pos < 0:
            return None
    return None


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Position after the terminating empty sub-block, or -1 when the data ends first."""
    size = len(data)
    while pos < size:
        block = data[pos]
        pos += 1 + block
        if block == 0:
            return pos
    return -1


def _webp_end(data: bytes) -> int | None:
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    riff_size = struct.unpack_from("<I", data, 4)[0]
    end = 8 + riff_size + (riff_size & 1)
    if end > len(data):
        return None
    # The chunks must fill the RIFF body exactly, or the size field is not to be trusted.
    pos = 12
    while pos + 8 <= end:
        chunk_size = struct.unpack_from("<I", data, pos + 4)[0]
        pos += 8 + chunk_size + (chunk_size & 1)
    return end if pos == end else None


_IMAGE_END_WALKERS: Final = {"jpeg": _jpeg_end, "png": _png_end, "gif": _gif_end, "webp": _webp_end}


def decode_image(data: bytes, limits: ImageLimits, *, draft_long_side: int | None = None) -> DecodedImage:
    """Decode untrusted bytes into upright RGB pixels, or raise `ImageRejected`.

    `draft_long_side`: a JPEG at least twice this long is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
    DCT scaling, several times faster than a full decode), never below this long side. For callers
    that only need that much resolution (the bot); the catalog keeps full decodes."""
    if not data:
        raise ImageRejected("empty", "The file is empty.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            "too_large", f"The file has {len(data):,} bytes, more than the limit of {limits.max_bytes:,}."
        )
    data = bytes(data)
    fmt = sniff_format(data)
    if fmt == "avif" and not _AVIF_READABLE:
        fmt = None
    if fmt is None:
        other = _known_unsupported_format(data)
        if other is not None:
            raise ImageRejected("unsupported_format", f"{other} images are not supported.")
        raise ImageRejected(
            "not_an_image", "The file is not an image (its first bytes match no image format)."
        )

    gif_frame_count = 0
    if fmt == "png":
        data = _strip_png_metadata(data)
    elif fmt == "jpeg" and data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise ImageRejected("corrupt", f"The JPEG has more than {MAX_JPEG_SCANS} scans.")
    declared = _declared_size(fmt, data)
    if declared is not None:
        _check_pixels(*declared, limits)
    if fmt == "gif":
        gif_frame_count, extent = _scan_gif(data, max(1, limits.max_frames_scanned))
        _check_pixels(*extent, limits)

    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; truncated images may pass"
        )
    try:
        with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]]) as image:
            return _decode_opened(image, fmt, limits, gif_frame_count, draft_long_side)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", f"The image declares too many pixels ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "corrupt", f"The file starts like a {fmt.upper()} image but cannot be read."
        ) from exc
    except MemoryError as exc:
        raise ImageRejected("corrupt", "The image needs more memory than is available to decode.") from exc
    except Exception as exc:  # Pillow's plugins raise OSError, SyntaxError, ValueError, struct.error, ...
        text = str(exc)
        if isinstance(exc, EOFError) or "truncat" in text.lower():
            raise ImageRejected("truncated", f"The {fmt.upper()} image is truncated.") from exc
        raise ImageRejected("corrupt", f"The {fmt.upper()} image is damaged: {text[:200]}") from exc


def _decode_opened(
    image: Image.Image, fmt: str, limits: ImageLimits, gif_frame_count: int, draft_long_side: int | None
) -> DecodedImage:
    width, height = image.size
    _check_pixels(width, height, limits)
    _check_shape(width, height, limits)
    frame_count = gif_frame_count if fmt == "gif" else max(1, int(getattr(image, "n_frames", 1) or 1))
    full_size = (width, height)
    if fmt == "jpeg" and draft_long_side and max(width, height) >= 2 * draft_long_side:
        scale = draft_long_side / max(width, height)
        image.draft(None, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        width, height = image.size

    image.load()
    orientation = _orientation(image)
    if orientation >= 5:  # these turn the picture a quarter
        full_size = full_size[::-1]
    first = _upright(_to_rgb(image), orientation)
    frames, indices = [first], [0]
    for index in _sample_indices(
        _reachable_frames(frame_count, width * height, limits), limits.max_frames_sampled
    )[1:]:
        try:
            image.seek(index)
            frame = _upright(_to_rgb(image), orientation)
        except EOFError:
            break  # fewer frames than declared: keep what was read
        if frame.shape == first.shape:  # a GIF frame may grow the canvas; keep frames stackable
            frames.append(frame)
            indices.append(index)

    if limits.reject_greyscale and is_greyscale(first, limits.greyscale_saturation):
        raise ImageRejected(
            "greyscale", "The image is greyscale (e.g. a manga page), not a coloured picture."
        )
    return DecodedImage(
        rgb=first,
        frames=frames,
        format=fmt,
        width=first.shape[1],
        height=first.shape[0],
        animated=frame_count > 1,
        frame_count=frame_count,
        full_width=full_size[0],
        full_height=full_size[1],
        frame_indices=tuple(indices),
    )


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"The image declares an impossible size of {width}x{height}.")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "decompression_bomb",
            f"The image declares {width}x{height} = {width * height:,} pixels, "
            f"more than the limit of {limits.max_pixels:,}.",
        )


def _check_shape(width: int, height: int, limits: ImageLimits) -> None:
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect:
        raise ImageRejected(
            "bad_aspect",
            f"The image is {width}x{height}, an aspect ratio of {aspect:.1f}, over the limit of "
            f"{limits.max_aspect:g}.",
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            "too_small", f"The image is {width}x{height}; each side needs at least {limits.min_side} pixels."
        )


def _reachable_frames(frame_count: int, canvas_pixels: int, limits: ImageLimits) -> int:
    """How many leading frames seeking may go through within the limits (at least the first)."""
    per_frame = max(1, canvas_pixels) + FRAME_OVERHEAD_PIXELS
    return max(1, min(frame_count, limits.max_frames_scanned, limits.max_animation_pixels // per_frame))


def _declared_size(fmt: str, data: bytes) -> tuple[int, int] | None:
    """Width and height from the header, for formats whose parser allocates before we can look."""
    if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack_from(">II", data, 16)
    if fmt == "gif" and len(data) >= 10:
        return struct.unpack_from("<HH", data, 6)
    if fmt == "webp" and len(data) >= 30:
        # libwebp's animation decoder allocates two canvases as soon as it is created.
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8 ":
            return struct.unpack_from("<H", data, 26)[0] & 0x3FFF, struct.unpack_from("<H", data, 28)[
                0
            ] & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _strip_png_metadata(data: bytes) -> bytes:
    """The PNG without text, ICC and unknown chunks (and without anything after IEND).

    Pillow keeps up to 64 MiB of decompressed text per file; we never use it, so it never gets parsed.
    A chunk that runs past the end of the data is passed on as it is, for Pillow to call truncated.
    """
    view = memoryview(data)
    kept: list[memoryview] = [view[:8]]
    pos, end, chunks, dropped = 8, len(data), 0, False
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunk_end = pos + 12 + length
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageRejected("corrupt", f"The PNG has more than {MAX_PNG_CHUNKS:,} chunks.")
        if kind in _PNG_KEPT_CHUNKS and not (kind == b"eXIf" and length > MAX_PNG_EXIF_BYTES):
            kept.append(view[pos:chunk_end])
        else:
            dropped = True
        pos = chunk_end
        if kind == b"IEND":
            break
    if pos < end:
        if kept[-1][4:8] == b"IEND":
            dropped = True  # bytes after IEND (e.g. an appended archive) are not part of the image
        else:
            kept.append(view[pos:])
    return b"".join(kept) if dropped else data


def _scan_gif(data: bytes, cap: int) -> tuple[int, tuple[int, int]]:
    """Count a GIF's frames (stopping at `cap`) and the canvas their extents need, without decoding.

    Pillow's own `n_frames` walks every frame, which for a 20 MB file of 1x1 frames is a million steps.
    """
    size = len(data)
    canvas_w, canvas_h = struct.unpack_from("<HH", data, 6) if size >= 10 else (0, 0)
    pos = 13
    if size >= 13 and data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    frames = 0
    while pos < size and frames < cap:
        marker = data[pos]
        if marker == 0x21:  # extension: label, then data sub-blocks
            pos = _skip_gif_sub_blocks(data, pos + 2)
        elif marker == 0x2C:  # image descriptor
            if pos + 10 > size:
                break
            left, top, width, height, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            canvas_w, canvas_h = max(canvas_w, left + width), max(canvas_h, top + height)
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            pos = _skip_gif_sub_blocks(data, pos + 1)  # after the LZW minimum code size byte
            frames += 1
        else:  # trailer (0x3B) or garbage: Pillow stops there too
            break
    return max(frames, 1), (canvas_w, canvas_h)


def _skip_gif_sub_blocks(data: bytes, pos: int) -> int:
    size = len(data)
    while pos < size:
        block = data[pos]
        pos += 1 + block
        if block == 0:
            break
    return pos


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # damaged EXIF must not cost the picture; it only loses its rotation
        logger.debug("unreadable EXIF ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
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


def _to_rgb(image: Image.Image) -> np.ndarray:
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


def _sample_indices(frame_count: int, wanted: int) -> list[int]:
    """The first frame plus up to `wanted - 1` more, evenly spaced, ascending (cheap sequential seeks)."""
    wanted = max(1, min(wanted, frame_count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (frame_count - 1) / (wanted - 1)) for i in range(wanted)})


def _as_rgb_array(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got shape {array.shape} and dtype {array.dtype}")
    return array


def saturation_score(rgb: np.ndarray) -> float:
    """How colourful a picture is, from 0 (grey) to 1.

    The picture is box-averaged down to about 128 pixels a side (scanner and JPEG chroma noise
    averages out, areas of colour do not), white balanced on its brightest pixels (so the tint of
    yellowed paper reads as grey), and scored by the 95th percentile of per-pixel chroma
    (max - min channel): a coloured picture needs only 5% coloured area (hair, eyes) to score high.
    """
    array = _as_rgb_array(rgb)
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


def encode_png(rgb: np.ndarray, compress_level: int = 6) -> bytes:
    """Lossless, metadata-free PNG; the same pixels (and level) always give the same bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(_as_rgb_array(rgb))).save(
        buffer, "PNG", compress_level=compress_level, optimize=False
    )
    return buffer.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """Baseline JPEG without EXIF or ICC; the same pixels and quality always give the same bytes."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be between 1 and 100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(_as_rgb_array(rgb))).save(
        buffer, "JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False
    )
    return buffer.getvalue()
