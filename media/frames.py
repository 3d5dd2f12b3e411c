"""Animated images: counting a GIF's frames without decoding it, and which frames decoding samples.

Seeking to a frame decodes every frame before it, so sampling stays within the frames that
`ImageLimits.max_animation_pixels` lets seeking reach, spread evenly over them.
"""

from __future__ import annotations

import struct
from typing import Final

from catalog.settings import ImageLimits

# Seeking to frame k of a GIF/APNG/WebP decodes every frame before it at canvas size, so sampling only
# reaches as far as `ImageLimits.max_animation_pixels` allows (e.g. 96 frames of a 1000x1000
# animation at the default). Each frame also costs a fixed amount whatever its size, measured at about as much as
# decoding this many canvas pixels (Pillow 13: 90 us a frame of a 64x64 GIF, 2.5 ns a canvas pixel
# of a 320x240 one), so 10,000 tiny frames are not free either.
FRAME_OVERHEAD_PIXELS: Final = 32_768


def reachable_frames(frame_count: int, canvas_pixels: int, limits: ImageLimits) -> int:
    """How many leading frames seeking may go through within the limits (at least the first)."""
    per_frame = max(1, canvas_pixels) + FRAME_OVERHEAD_PIXELS
    return max(1, min(frame_count, limits.max_frames_scanned, limits.max_animation_pixels // per_frame))


def scan_gif(data: bytes, cap: int) -> tuple[int, tuple[int, int]]:
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


def sample_indices(frame_count: int, wanted: int) -> list[int]:
    """The first frame plus up to `wanted - 1` more, evenly spaced, ascending (cheap sequential seeks)."""
    wanted = max(1, min(wanted, frame_count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (frame_count - 1) / (wanted - 1)) for i in range(wanted)})
