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

Its parts live beside it: format sniffing in `media.sniff`, frame counting and sampling in
`media.frames`, pixel conversion in `media.pixels`, the greyscale test in `media.greyscale`; encoding
is `media.encode`, and cutting data appended after an image is `media.trailing`.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features

from catalog.settings import ImageLimits
from media.frames import reachable_frames, sample_indices, scan_gif
from media.greyscale import is_greyscale
from media.pixels import exif_orientation, to_rgb, upright
from media.sniff import known_unsupported_format, sniff_format

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

# PNG chunks Pillow needs for pixels, transparency, animation and orientation; everything else
# (tEXt/zTXt/iTXt, iCCP, unknown private chunks) is metadata we never use.
_PNG_KEPT_CHUNKS: Final = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT", b"eXIf"}
)


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

    def decode_file(self, path: Path) -> DecodedImage:
        """A picture file read (`read_file`: refused by its size first) and decoded as a post is."""
        return self.decode(self.read_file(path))

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
        other = known_unsupported_format(data)
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
        gif_frame_count, extent = scan_gif(data, max(1, limits.max_frames_scanned))
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
    orientation = exif_orientation(image)
    if orientation >= 5:  # these turn the picture a quarter
        full_size = full_size[::-1]
    first = upright(to_rgb(image), orientation)
    frames, indices = [first], [0]
    for index in sample_indices(
        reachable_frames(frame_count, width * height, limits), limits.max_frames_sampled
    )[1:]:
        try:
            image.seek(index)
            frame = upright(to_rgb(image), orientation)
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
