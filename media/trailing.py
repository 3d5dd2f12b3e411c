"""Bytes appended after an image's own end (an archive behind a JPEG, a script behind a GIF), cut off.

`strip_trailing_data` walks a JPEG, PNG, GIF or WebP structure to where the format says the image
ends; what is stored and served on is the image alone (`without_trailing_data`).
"""

from __future__ import annotations

import re
import struct
from typing import Final

from media.sniff import sniff_format


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
