"""JPEG encoding with fixed settings and the near-duplicate edits a scraper's dedup must see through."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

NEAR_DUPLICATE_KINDS = ("reencode", "resize", "crop", "watermark", "recolour", "mirror")
JPEG_QUALITY = (60, 95)  # inclusive range drawn per image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """JPEG bytes at `quality`; the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    # Every setting pinned (no EXIF, no optimize pass, baseline, 4:2:0) so equal pixels give equal bytes.
    image.convert("RGB").save(
        buffer, "JPEG", quality=quality, subsampling=2, optimize=False, progressive=False
    )
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, rng: np.random.Generator) -> bytes:
    """JPEG bytes at a quality drawn from `rng`; the same image and rng state give the same bytes."""
    low, high = JPEG_QUALITY
    return jpeg_bytes(image, int(rng.integers(low, high + 1)))


def _reencode(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    data = jpeg_bytes(image, int(rng.integers(25, 55)))
    with Image.open(io.BytesIO(data)) as decoded:
        return decoded.convert("RGB")


def _resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = float(rng.uniform(0.5, 0.85))
    size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    keep = float(rng.uniform(0.9, 0.97))
    w, h = max(16, round(image.width * keep)), max(16, round(image.height * keep))
    x = int(rng.integers(0, image.width - w + 1))
    y = int(rng.integers(0, image.height - h + 1))
    return image.crop((x, y, x + w, y + h))


def _watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    handle = "@" + "".join(chr(ord("a") + int(c)) for c in rng.integers(0, 26, size=int(rng.integers(5, 10))))
    font = ImageFont.load_default(size=max(10, base.height // 14))
    left, top, right, bottom = draw.textbbox((0, 0), handle, font=font)
    margin = max(2, base.width // 40)
    corner = int(rng.integers(4))
    x = margin if corner % 2 == 0 else base.width - (right - left) - margin
    y = margin if corner < 2 else base.height - (bottom - top) - margin
    alpha = int(rng.integers(120, 200))
    shadow = (0, 0, 0, alpha // 2)
    draw.text((x + 1 - left, y + 1 - top), handle, font=font, fill=shadow)
    draw.text((x - left, y - top), handle, font=font, fill=(255, 255, 255, alpha))
    return Image.alpha_composite(base, layer).convert("RGB")


def _recolour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    hsv = np.asarray(image.convert("HSV"), dtype=np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-6, 7))) % 256  # a few degrees of hue
    shifted = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    shifted = ImageEnhance.Color(shifted).enhance(float(rng.uniform(0.85, 1.15)))
    return ImageEnhance.Brightness(shifted).enhance(float(rng.uniform(0.92, 1.08)))


def _mirror(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Flipped left to right, a common repost edit (the copy is re-encoded like every other)."""
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


_EDITS = {
    "reencode": _reencode,
    "resize": _resize,
    "crop": _crop,
    "watermark": _watermark,
    "recolour": _recolour,
    "mirror": _mirror,
}


def near_duplicate(image: Image.Image, rng: np.random.Generator, kind: str) -> Image.Image:
    """A copy of `image` a person would call the same picture: re-encoded, resized, cropped,
    watermarked, slightly recoloured or mirrored (`kind`, one of NEAR_DUPLICATE_KINDS)."""
    edit = _EDITS.get(kind)
    if edit is None:
        raise ValueError(
            f"unknown near-duplicate kind {kind!r}; expected one of {', '.join(NEAR_DUPLICATE_KINDS)}"
        )
    return edit(image.convert("RGB"), rng)
