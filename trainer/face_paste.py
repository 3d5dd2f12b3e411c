"""Training pictures for the face finder made by pasting: real face crops pasted onto backgrounds
at known boxes, with the scale, rotation, blending and occlusion range of real posts, plus non-face
patches pasted the same way (so that a pasted square is no cue).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from trainer.face_data import FloatBox, Picture, Synthetic, read_rgb


def _mask(side: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Alpha for a pasted patch: a hard square, or a feathered rounded square or ellipse."""
    mask = np.zeros((side, side), np.float32)
    if kind == "square":
        mask[:] = 1
        return mask
    c = side / 2
    if kind == "ellipse":
        axes = (round(c * rng.uniform(0.85, 1.0)), round(c * rng.uniform(0.9, 1.0)))
        cv2.ellipse(mask, (round(c), round(c)), axes, 0, 0, 360, 1, -1)
    else:
        r = max(1, int(side * rng.uniform(0.1, 0.3)))
        cv2.rectangle(mask, (r, 0), (side - r, side), 1, -1)
        cv2.rectangle(mask, (0, r), (side, side - r), 1, -1)
        for cx, cy in ((r, r), (side - r, r), (r, side - r), (side - r, side - r)):
            cv2.circle(mask, (cx, cy), r, 1, -1)
    k = max(3, int(side * rng.uniform(0.03, 0.1)) | 1)
    return cv2.GaussianBlur(mask, (k, k), 0)


def paste(
    canvas: np.ndarray,
    patch: np.ndarray,
    centre: tuple[float, float],
    side: int,
    angle: float,
    kind: str,
    rng: np.random.Generator,
) -> None:
    """Paste `patch` scaled to `side`, rotated by `angle` degrees about its centre, blended by a mask."""
    interpolation = cv2.INTER_AREA if side < patch.shape[0] else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (side, side), interpolation=interpolation).astype(np.float32)
    alpha = _mask(side, kind, rng)
    diag = math.ceil(side * 1.5) | 1
    o = (diag - side) // 2
    big = np.zeros((diag, diag, 3), np.float32)
    big_alpha = np.zeros((diag, diag), np.float32)
    big[o : o + side, o : o + side] = patch
    big_alpha[o : o + side, o : o + side] = alpha
    turn = cv2.getRotationMatrix2D((diag / 2, diag / 2), angle, 1.0)
    big = cv2.warpAffine(big, turn, (diag, diag), flags=cv2.INTER_LINEAR)
    big_alpha = cv2.warpAffine(big_alpha, turn, (diag, diag), flags=cv2.INTER_LINEAR)
    x0, y0 = round(centre[0] - diag / 2), round(centre[1] - diag / 2)
    height, width = canvas.shape[:2]
    dx0, dy0, dx1, dy1 = max(0, x0), max(0, y0), min(width, x0 + diag), min(height, y0 + diag)
    if dx1 <= dx0 or dy1 <= dy0:
        return
    a = big_alpha[dy0 - y0 : dy1 - y0, dx0 - x0 : dx1 - x0, None]
    p = big[dy0 - y0 : dy1 - y0, dx0 - x0 : dx1 - x0]
    region = canvas[dy0:dy1, dx0:dx1].astype(np.float32)
    canvas[dy0:dy1, dx0:dx1] = (region * (1 - a) + p * a).clip(0, 255).astype(np.uint8)


def _occlude(canvas: np.ndarray, box: FloatBox, rng: np.random.Generator, patches: list[np.ndarray]) -> None:
    """Cover 15-45% of a face from one side (a hand, a speech bubble, another character's hair)."""
    x, y, w, h = box
    frac = rng.uniform(0.15, 0.45)
    side = int(rng.integers(4))
    rect = [
        (x, y + h * (1 - frac), w, h * frac),
        (x, y, w, h * frac * 0.7),
        (x, y, w * frac, h),
        (x + w * (1 - frac), y, w * frac, h),
    ][side]
    height, width = canvas.shape[:2]
    rx0, ry0 = max(0, round(rect[0])), max(0, round(rect[1]))
    rx1, ry1 = min(width, round(rect[0] + rect[2])), min(height, round(rect[1] + rect[3]))
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        return
    if patches and rng.random() < 0.6:
        canvas[ry0:ry1, rx0:rx1] = cv2.resize(
            patches[int(rng.integers(len(patches)))], (rx1 - rx0, ry1 - ry0)
        )
    else:
        canvas[ry0:ry1, rx0:rx1] = rng.integers(0, 256, 3)


def _iou(a: FloatBox, b: FloatBox) -> float:
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def _backdrop(
    backgrounds: list[np.ndarray],
    width: int,
    height: int,
    rng: np.random.Generator,
    synthetic: Synthetic | None,
) -> np.ndarray:
    if not backgrounds or rng.random() < 0.2:
        if synthetic is not None:
            return synthetic.backdrop(width, height, rng)
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)  # a plain two-colour gradient
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
        return np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8)
    src = backgrounds[int(rng.integers(len(backgrounds)))]
    h, w = src.shape[:2]
    aspect = width / height
    cw = w * rng.uniform(0.5, 1.0)
    ch = cw / aspect
    if ch > h:
        ch = h * rng.uniform(0.5, 1.0)
        cw = min(w, ch * aspect)
    x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    crop = np.ascontiguousarray(src[int(y0) : int(y0 + ch), int(x0) : int(x0 + cw)])
    if rng.random() < 0.5:
        crop = np.ascontiguousarray(crop[:, ::-1])
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def _canvas_size(rng: np.random.Generator, shortest: int, longest: int) -> tuple[int, int]:
    """Width and height: a long side of `shortest`-`longest` px, landscape or portrait (0.55-1.8)."""
    long_side = int(rng.uniform(shortest, longest))
    aspect = float(np.exp(rng.uniform(math.log(0.55), math.log(1.8))))
    return (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)


def _put_patches(
    canvas: np.ndarray, rng: np.random.Generator, patches: list[np.ndarray], synthetic: Synthetic | None
) -> None:
    """0-2 non-face patches pasted as faces are, so that a pasted square is no cue."""
    height, width = canvas.shape[:2]
    for _ in range(int(rng.integers(0, 3))):
        patch = patches[int(rng.integers(len(patches)))] if patches else _backdrop([], 64, 64, rng, synthetic)
        s0 = min(patch.shape[:2])
        side = max(8, int(min(width, height) * rng.uniform(0.1, 0.5)))
        kind = str(rng.choice(["square", "rounded", "ellipse"]))
        paste(
            canvas,
            patch[:s0, :s0],
            (rng.uniform(0, width), rng.uniform(0, height)),
            side,
            rng.normal(0, 10),
            kind,
            rng,
        )


def _free_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    taken: list[FloatBox],
    smallest: float,
    largest: float,
) -> FloatBox | None:
    """A square of `smallest`-`largest` of the long side (log-uniform), inside the picture and
    clear of `taken`; None after 20 tries."""
    for _attempt in range(20):
        side = int(max(width, height) * math.exp(rng.uniform(math.log(smallest), math.log(largest))))
        side = max(12, min(side, int(min(width, height) * 0.95)))
        cx, cy = (
            rng.uniform(side * 0.45, width - side * 0.45),
            rng.uniform(side * 0.45, height - side * 0.45),
        )
        box = (cx - side / 2, cy - side / 2, float(side), float(side))
        if all(_iou(box, f) < 0.05 for f in taken):
            return box
    return None


def _put_face(
    canvas: np.ndarray, face: np.ndarray, box: FloatBox, rng: np.random.Generator, patches: list[np.ndarray]
) -> tuple[FloatBox, bool]:
    """Paste one face crop at `box` (mirrored half the time, tilted, maybe partly covered): its box
    clipped to the picture, and whether it was covered."""
    if rng.random() < 0.5:
        face = np.ascontiguousarray(face[:, ::-1])
    tilt = float(np.clip(rng.normal(0, 12), -40, 40)) if rng.random() < 0.8 else float(rng.uniform(-45, 45))
    kind = str(rng.choice(["square", "rounded", "ellipse"], p=[0.3, 0.35, 0.35]))
    side = int(box[2])
    paste(canvas, face, (box[0] + side / 2, box[1] + side / 2), side, tilt, kind, rng)
    covered = bool(rng.random() < 0.25)
    if covered:
        _occlude(canvas, box, rng, patches)
    height, width = canvas.shape[:2]
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    return (x0, y0, min(width, box[0] + side) - x0, min(height, box[1] + side) - y0), covered


def pasted_picture(
    rng: np.random.Generator,
    crops: list[Path],
    backgrounds: list[np.ndarray],
    patches: list[np.ndarray],
    synthetic: Synthetic | None = None,
) -> Picture:
    """One picture: 1-6 face crops (faces 4-60% of the long side, tilted mostly within 12 degrees,
    a quarter partly covered) and 0-2 non-face patches, on a photo, anime or synthetic backdrop."""
    width, height = _canvas_size(rng, 384, 768)
    canvas = _backdrop(backgrounds, width, height, rng, synthetic)
    _put_patches(canvas, rng, patches, synthetic)
    count = int(rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6]))
    faces: list[FloatBox] = []
    for _ in range(count):
        box = _free_box(rng, width, height, faces, 0.04, 0.6 if count == 1 else 0.35)
        if box is None:
            continue
        face = read_rgb(crops[int(rng.integers(len(crops)))])
        if face is None:
            continue
        faces.append(_put_face(canvas, face, box, rng, patches)[0])
    if rng.random() < 0.5:
        gain = rng.uniform(0.8, 1.2, 3)
        canvas = (canvas.astype(np.float32) * gain + rng.uniform(-20, 20)).clip(0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    quality = int(rng.uniform(50, 95))
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        canvas = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    return Picture(canvas, faces)


def pasted_scene(
    rng: np.random.Generator,
    faces: list[np.ndarray],
    backgrounds: list[np.ndarray],
    patches: list[np.ndarray],
    synthetic: Synthetic | None = None,
    *,
    long_side: tuple[int, int] = (800, 1600),
    sizes: tuple[float, float] = (0.06, 0.35),
) -> tuple[np.ndarray, list[tuple[int, FloatBox, bool]]]:
    """A group picture to measure on (`bench.scenes`), made as the training pictures are: each of
    `faces` (RGB crops) once, `sizes` of the long side (log-uniform), clear of one another, with
    non-face patches, on a photo or drawn backdrop; no colour change (a character's colours are
    part of who it is). Returns the pixels and, per face placed, its
    index in `faces`, its box and whether it was partly covered (a face with no room is left out)."""
    width, height = _canvas_size(rng, *long_side)
    canvas = np.ascontiguousarray(_backdrop(backgrounds, width, height, rng, synthetic))
    _put_patches(canvas, rng, patches, synthetic)
    placed: list[tuple[int, FloatBox, bool]] = []
    for index, face in enumerate(faces):
        box = _free_box(rng, width, height, [b for _, b, _ in placed], *sizes)
        if box is not None:
            placed.append((index, *_put_face(canvas, face, box, rng, patches)))
    return canvas, placed
