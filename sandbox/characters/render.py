"""Turning character specs into images: backgrounds, per-image pose and lighting, single portraits
and multi-face scenes with ground-truth face boxes."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from sandbox.characters.drawing import Pen, Pose, draw_character, face_box
from sandbox.characters.traits import CharacterSpec

Box = tuple[int, int, int, int]
EXPRESSIONS = ("smile", "open", "flat")
# Face width as a fraction of the image, and how far (in face widths) the face centre keeps from
# the edges. The anime face cascade only sees windows that fit in the frame, and its window spans
# more than the skin: about 1.2 face widths, from the bangs to below the chin.
FACE_MIN = 0.36
FACE_MAX = 0.55
MARGIN_X = 0.7
MARGIN_TOP = 0.7
MARGIN_BOTTOM = 0.95
# Beyond about 8 degrees of head tilt the cascade starts missing faces.
MAX_TILT = 8.0
SCENE_SPACING = 1.7


def _supersample(short_side: int) -> int:
    # Small images need more supersampling for their thin lines to survive downscaling.
    return min(4, max(2, math.ceil(256 / short_side)))


def _random_colour(
    rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]
) -> tuple[int, ...]:
    h = rng.random()
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    return tuple(int(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))


def _background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A plain-ish backdrop: gradient, stripes, dots or scattered shapes, at canvas resolution."""
    kind = ("gradient", "stripes", "dots", "shapes", "room")[int(rng.integers(5))]
    a = np.array(_random_colour(rng, (0.05, 0.6), (0.55, 1.0)), dtype=np.float32)
    b = np.array(_random_colour(rng, (0.05, 0.6), (0.35, 1.0)), dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    # A smooth gradient needs few samples: compute it on a small grid and let PIL upscale it.
    grid = 16
    axis = np.linspace(0.0, 1.0, grid, dtype=np.float32)
    ramp = axis[None, :] * math.cos(angle) + axis[:, None] * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min()))
    pixels = a + (b - a) * ramp[..., None]
    small = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    image = small.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    unit = max(width, height)
    if kind == "room":  # a wall and a darker floor
        horizon = rng.uniform(0.55, 0.85) * height
        floor = tuple(int(c * 0.75) for c in (a + b) / 2)
        draw.rectangle([0, horizon, width, height], fill=floor)
    elif kind == "stripes":
        step = rng.uniform(0.06, 0.16) * unit
        colour = tuple(int(c) for c in (a * 0.85 + 30).clip(0, 255))
        for k in range(-2, int(2 * unit / step) + 2):
            x = k * step
            draw.line([(x, 0), (x - unit, unit)], fill=colour, width=max(1, int(step * 0.35)))
    elif kind == "dots":
        step = rng.uniform(0.07, 0.14) * unit
        r = step * rng.uniform(0.12, 0.25)
        colour = tuple(int(c) for c in (b * 0.6 + 100).clip(0, 255))
        for gy in np.arange(step / 2, height, step):
            for gx in np.arange(step / 2, width, step):
                draw.ellipse([gx - r, gy - r, gx + r, gy + r], fill=colour)
    elif kind == "shapes":
        for _ in range(int(rng.integers(3, 9))):
            colour = _random_colour(rng, (0.1, 0.5), (0.6, 1.0))
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(0.04, 0.18) * unit
            if rng.random() < 0.5:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
            else:
                draw.rectangle([x - r, y - r * 0.6, x + r, y + r * 0.6], fill=colour)
    return image


def _light(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast, gamma, a faint colour cast and a light gradient across the frame.

    Kept mild on purpose: a strong cast would turn blonde into orange and change who it is.
    """
    gamma = rng.uniform(0.85, 1.15)
    contrast = rng.uniform(0.82, 1.12)
    brightness = rng.uniform(-0.08, 0.08)
    tint = rng.uniform(-0.035, 0.035, size=3)
    levels = np.arange(256, dtype=np.float64) / 255.0
    curves = [((levels**gamma - 0.5) * contrast + 0.5 + brightness + t) for t in tint]
    lut = np.concatenate([(c * 255.0 + 0.5).clip(0, 255) for c in curves]).astype(np.uint8)
    toned = np.asarray(image.point(lut.tolist()), dtype=np.float32)
    # light falls off across the frame from a random side
    h, w = toned.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    strength = rng.uniform(0.0, 0.25)
    xs = (np.arange(w, dtype=np.float32) - w / 2) * math.cos(angle) / max(w, h)
    ys = (np.arange(h, dtype=np.float32) - h / 2) * math.sin(angle) / max(w, h)
    falloff = 1.0 + strength * (ys[:, None] + xs[None, :])
    return Image.fromarray((toned * falloff[..., None] + 0.5).clip(0, 255).astype(np.uint8), "RGB")


def _pose(rng: np.random.Generator, cx: float, cy: float, face_px: float, max_tilt: float) -> Pose:
    return Pose(
        cx=cx,
        cy=cy,
        face_px=face_px,
        tilt=float(rng.uniform(-max_tilt, max_tilt)),
        yaw=float(rng.uniform(-0.5, 0.5)),
        line_weight=float(rng.uniform(0.7, 1.5)),
        expression=EXPRESSIONS[int(rng.integers(len(EXPRESSIONS)))],
        gaze=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
    )


def _draw(
    width: int, height: int, placed: list[tuple[CharacterSpec, Pose]], rng: np.random.Generator
) -> Image.Image:
    s = _supersample(min(width, height))
    canvas = _background(width * s, height * s, rng)
    draw = ImageDraw.Draw(canvas)
    for spec, pose in placed:
        draw_character(Pen(draw, pose, s), spec)
    return _light(canvas.reduce(s), rng)


def render_character(
    spec: CharacterSpec, rng: np.random.Generator, size: int = 256
) -> tuple[Image.Image, Box]:
    """One portrait of `spec` at `size` x `size`, and its face box (x, y, w, h).

    The pose, scale, position, crop, background, lighting and line weight come from `rng`.
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    face_px = size * float(rng.uniform(FACE_MIN, FACE_MAX))
    # The face stays in frame; hair, shoulders and accessories may be cropped by the edges.
    cx = float(rng.uniform(MARGIN_X * face_px, size - MARGIN_X * face_px))
    cy = float(rng.uniform(MARGIN_TOP * face_px, size - MARGIN_BOTTOM * face_px))
    pose = _pose(rng, cx, cy, face_px, max_tilt=MAX_TILT)
    image = _draw(size, size, [(spec, pose)], rng)
    return image, face_box(pose)


def render_scene(
    specs: list[CharacterSpec], rng: np.random.Generator, size: tuple[int, int] = (384, 256)
) -> tuple[Image.Image, list[tuple[str, Box]]]:
    """Several characters side by side in one `size` = (width, height) image, with (slug, box) per face."""
    if not specs:
        raise ValueError("a scene needs at least one character")
    width, height = size
    n = len(specs)
    # Faces sit side by side with their detector windows (about 1.3 face widths) apart and inside
    # the frame; shoulders and long hair may overlap the neighbours.
    face_px = min(
        height * float(rng.uniform(0.42, 0.55)),
        height / (MARGIN_TOP + MARGIN_BOTTOM),
        width / (2 * MARGIN_X + SCENE_SPACING * (n - 1)),
    )
    if face_px < 32:
        raise ValueError(f"{n} characters do not fit in a {width}x{height} scene")
    left, right = MARGIN_X * face_px, width - MARGIN_X * face_px
    # Spread the spare width at random between the faces: sorted uniform offsets keep every face
    # inside the margins and at least SCENE_SPACING face widths from its neighbour.
    spare = max(0.0, (right - left) - SCENE_SPACING * face_px * (n - 1))
    offsets = np.sort(rng.uniform(0.0, spare, size=n))
    placed = []
    for i, spec in enumerate(specs):
        cx = left + float(offsets[i]) + SCENE_SPACING * face_px * i
        cy = float(rng.uniform(MARGIN_TOP * face_px, height - MARGIN_BOTTOM * face_px))
        placed.append((spec, _pose(rng, cx, cy, face_px, max_tilt=MAX_TILT)))
    image = _draw(width, height, placed, rng)
    return image, [(spec.slug, face_box(pose)) for spec, pose in placed]
