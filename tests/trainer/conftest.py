"""Trainer test helpers: small folder-per-character datasets drawn by the sandbox renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog.settings import Settings


def draw_folder(root: Path, counts: dict[int, int], *, size: int = 96, seed: int = 3) -> list[str]:
    """`counts` maps a character index to how many portraits to draw; returns the folder names."""
    from sandbox.characters.render import render_character
    from sandbox.characters.traits import make_characters

    specs = make_characters(max(counts) + 1, seed=seed)
    rng = np.random.default_rng(seed)
    names = []
    for index, count in sorted(counts.items()):
        spec = specs[index]
        folder = root / spec.slug
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, _box = render_character(spec, rng, size)
            image.save(folder / f"{i:03d}.jpg", quality=90)
        names.append(spec.slug)
    return names


def tiny_settings(data_dir: Path, cascade_path: Path, **train: object) -> Settings:
    defaults: dict[str, object] = {
        "backbone": "mobilenet_v3_small",
        "image_size": 32,
        "epochs": 1,
        "batch_size": 8,
        "min_images_per_class": 4,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "device": "cpu",
        "seed": 11,
    }
    return Settings(
        data_dir=data_dir, faces={"cascade_path": cascade_path}, train={**defaults, **train}, _env_file=None
    )


@pytest.fixture(scope="session")
def three_characters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three characters with 10 portraits each (drawn once per session)."""
    root = tmp_path_factory.mktemp("three_characters")
    return root, draw_folder(root, {0: 10, 1: 10, 2: 10})
