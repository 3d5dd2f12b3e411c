"""Which image format a file is, from its magic bytes alone (never a file name or a Content-Type).

`sniff_format` names the formats `media.decode` decodes; `known_unsupported_format` names real image
formats it deliberately refuses, so that they are told apart from bytes that are no image at all.
"""

from __future__ import annotations

import struct
from typing import Final

_BMP_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


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


def known_unsupported_format(data: bytes) -> str | None:
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
