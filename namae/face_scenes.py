"""Synthetic training pictures for the face finder from `sandbox.characters`: drawn scenes of 1-3
characters with their known face boxes, and drawn backdrops. The trainer may not import the
sandbox, so `namae train-faces` hands these in (`trainer.face_data.Synthetic`)."""

from __future__ import annotations

import numpy as np

from sandbox.characters.render import _background, _light, render_scene
from sandbox.characters.traits import make_characters
from trainer import TrainingError
from trainer.face_data import Picture


class SandboxScenes:
    def __init__(self, seed: int, characters: int = 24) -> None:
        self.specs = make_characters(characters, seed=seed)

    def scene(self, rng: np.random.Generator) -> Picture:
        for _ in range(10):
            count = int(rng.integers(1, 4))
            size = (int(rng.uniform(320, 640)), int(rng.uniform(256, 512)))
            chosen = [self.specs[i] for i in rng.choice(len(self.specs), size=count, replace=False)]
            try:
                image, faces = render_scene(chosen, rng, size=size)
            except ValueError:  # the characters did not fit the canvas: draw another
                continue
            return Picture(
                np.asarray(image.convert("RGB")), [tuple(float(v) for v in box) for _, box in faces]
            )
        raise TrainingError("could not render a synthetic scene")

    def backdrop(self, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
        return np.array(_light(_background(width, height, rng), rng), dtype=np.uint8)
