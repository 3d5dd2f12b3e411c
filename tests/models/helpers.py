"""Registry helpers for tests, torch-free so that crash-test children start fast."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from catalog.settings import Settings
from catalog.settings_sections import StoreSettings
from models.card import CARD_NAME, ONNX_NAME, ModelCard, Thresholds, sha256_file
from models.memory import MEMORY_NAME, CharacterMemory
from models.openset import OpenSetThresholds
from models.registry import Registry

IMAGE_SIZE = 32
LABELS = ["Aiko Tanaka", "Hana Suzuki", "Rin Ito", "Yui Mori"]


def make_registry(root: Path, store: StoreSettings, engine: Any = None, **kw: Any) -> Registry:
    """A registry in the folder `root`, or, when `store` names a bucket, in that bucket with its
    local cache under `root` (as a machine with its own data directory would have)."""
    if store.url is None:
        return Registry(root, engine, **kw)
    return Registry.from_settings(Settings(data_dir=root, store=store, _env_file=None), engine, **kw)


def random_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """RGB images of assorted sizes and aspect ratios, as decoded uploads would be."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        out.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return out


def stage_version(
    registry: Registry,
    onnx_path: Path,
    *,
    f1: float | None,
    labels: list[str] = LABELS,
    image_size: int = IMAGE_SIZE,
    temperature: float = 1.0,
    thresholds: Any = 0.5,
    register: bool = True,
    memory: CharacterMemory | None = None,
    open_set: OpenSetThresholds | None = None,
) -> tuple[str, Path]:
    """A version folder around an existing ONNX file, with the card the exporter would write (and,
    when given, the character memory and its open-set thresholds)."""
    version, staging = registry.new_version_dir()
    shutil.copyfile(onnx_path, staging / ONNX_NAME)
    metrics = {} if f1 is None else {"test_macro_f1": f1}
    card = ModelCard(
        version=version,
        labels=labels,
        image_size=image_size,
        temperature=temperature,
        thresholds=Thresholds.coerce(thresholds),
        metrics=metrics,
        dataset_fingerprint="test",
        parent=registry.active_version(),
        backbone="tiny",
        onnx_sha256=sha256_file(staging / ONNX_NAME),
        open_set=open_set,
    )
    if memory is not None:
        memory.save(staging / MEMORY_NAME)
    (staging / CARD_NAME).write_text(card.to_json())
    if register:
        registry.register(staging)
        return version, registry.version_dir(version)
    return version, staging
