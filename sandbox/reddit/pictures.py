"""The picture bytes a scripted world posts: synthetic characters rendered as JPEGs, near duplicates
of them, and hostile files no image pipeline should keep."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

Render = Callable[[Any, int], bytes]
NearDuplicate = Callable[[bytes, int], bytes]


def default_render(seed: int) -> Render:
    """A JPEG of a synthetic character (sandbox.characters), variant `index`, the same every call."""
    import numpy as np

    from sandbox.characters import encode_jpeg, render_character

    def render(spec: Any, index: int) -> bytes:
        rng = np.random.default_rng([seed, _stable(spec.name), index])
        image, _ = render_character(spec, rng)
        return bytes(encode_jpeg(image, rng))

    return render


def default_near_duplicate(data: bytes, index: int) -> bytes:
    """Same picture, slightly brighter, resized and re-encoded: a different file, same hash."""
    import io

    from PIL import Image, ImageEnhance

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    tweaked = ImageEnhance.Brightness(rgb).enhance(1.04 + 0.01 * (index % 3))
    tweaked = tweaked.resize((width - 8, height - 8))
    return _encode(tweaked, "JPEG", quality=84)


def _encode(image: Any, fmt: str, quality: int = 90) -> bytes:
    import io

    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def default_hostile_cases() -> list[tuple[str, bytes, str]]:
    """A few files no image pipeline should keep: (name, bytes, content type claimed)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    # 30000 x 30000 pixels declared, a few bytes of data: a decompression bomb by its header.
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    return [
        ("html_as_jpeg", b"<!doctype html><html><body>not an image</body></html>", "image/jpeg"),
        ("truncated_jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01", "image/jpeg"),
        ("empty", b"", "image/jpeg"),
        ("pixel_bomb_png", bomb, "image/png"),
    ]
