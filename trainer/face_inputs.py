"""The face finder's training inputs: the endless mix of boxed, pasted and synthetic pictures
(`stream`), and one picture framed as a size x size input with its face boxes (`fit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from trainer import TrainingError
from trainer.face_data import FloatBox, Picture, Synthetic, read_rgb
from trainer.face_paste import pasted_picture


def stream(
    rng: np.random.Generator,
    *,
    boxed: list[tuple[Path, list[FloatBox]]],
    crops: list[Path],
    backgrounds: list[np.ndarray],
    patches: list[np.ndarray],
    synthetic: Synthetic | None = None,
    boxed_share: float = 0.4,
    synthetic_share: float = 0.1,
) -> Iterator[Picture]:
    """Endless training pictures: boxed pictures, pasted crops and synthetic scenes in these shares
    (a missing source's share goes to the others)."""
    if not (boxed or crops or synthetic):
        raise TrainingError(
            "nothing to train the face finder on: no boxed pictures, crops or synthetic scenes"
        )
    while True:
        u = rng.random()
        if boxed and (u < boxed_share or not (crops or synthetic)):
            path, faces = boxed[int(rng.integers(len(boxed)))]
            rgb = read_rgb(path)
            if rgb is not None:
                yield Picture(rgb, faces)
            continue
        if synthetic is not None and (not crops or u < boxed_share + synthetic_share):
            yield synthetic.scene(rng)
            continue
        yield pasted_picture(rng, crops, backgrounds, patches, synthetic)


def fit(
    picture: Picture, size: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A size x size training input (random scale and window, flip and colour when `rng` is given),
    with its faces and its cut faces (under 60% inside: left out of the loss) as x0, y0, x1, y1."""
    rgb = picture.rgb
    h, w = rgb.shape[:2]
    long = size * (rng.uniform(0.8, 1.4) if rng is not None else 1.0)
    s = long / max(h, w)
    interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interpolation)
    boxes = np.array(
        [[x * s, y * s, (x + bw) * s, (y + bh) * s] for x, y, bw, bh in picture.faces], np.float32
    )
    boxes = boxes.reshape(-1, 4)
    h, w = rgb.shape[:2]
    ox = int(rng.integers(0, max(1, w - size + 1))) if rng is not None else 0
    oy = int(rng.integers(0, max(1, h - size + 1))) if rng is not None else 0
    canvas = np.full((size, size, 3), 114, np.uint8)
    window = rgb[oy : oy + size, ox : ox + size]
    canvas[: window.shape[0], : window.shape[1]] = window
    boxes -= [ox, oy, ox, oy]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, window.shape[1])
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, window.shape[0])
    visible = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
    keep = visible >= 0.6 * np.maximum(area, 1)
    cut = ~keep & (visible > 0)
    if rng is not None:
        if rng.random() < 0.5:
            canvas = np.ascontiguousarray(canvas[:, ::-1])
            clipped[:, [0, 2]] = size - clipped[:, [2, 0]]
        if rng.random() < 0.5:
            hsv = cv2.cvtColor(canvas, cv2.COLOR_RGB2HSV).astype(np.float32)
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
            hsv[..., 1] *= rng.uniform(0.7, 1.3)
            hsv[..., 2] *= rng.uniform(0.75, 1.25)
            canvas = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return canvas, clipped[keep], clipped[cut]
