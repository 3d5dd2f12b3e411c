"""The default model for benchmarks that need one, exported through the real export path.

Latency does not depend on what the weights learned, so the benchmarks do not train: they take the
trainer's default backbone with its ImageNet weights (an offline package) and a fresh head, export
it with `trainer.export.export_version` (ONNX checker and torch parity included) into a registry
and make it active. Needs the `train` extra (torch); the bot's own install never imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BenchModel:
    registry_root: Path
    version: str
    backbone: str
    image_size: int
    labels: list[str]
    weights: str
    parity: dict[str, object]
    net: object  # the torch module the ONNX file was exported from (eval mode, CPU)


def export_default_model(
    registry_root: Path,
    *,
    classes: int = 20,
    image_size: int | None = None,
    backbone: str | None = None,
    seed: int = 1234,
) -> BenchModel:
    """Export and activate the default backbone (as `Settings().train` names it) in `registry_root`."""
    import torch

    from catalog.settings_sections import TrainSettings
    from models.registry import Registry
    from trainer.backbones import build
    from trainer.export import export_version

    defaults = TrainSettings()
    backbone = backbone or defaults.backbone
    image_size = image_size or defaults.image_size
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    built = build(backbone, classes, image_size, pretrained=True, allow_download=False)
    net = built.net.to("cpu").eval()
    labels = [f"character_{i:02d}" for i in range(classes)]
    parity_images = [
        rng.integers(0, 256, (int(rng.integers(80, 300)), int(rng.integers(80, 300)), 3), dtype=np.uint8)
        for _ in range(16)
    ]
    registry = Registry(registry_root)
    version, parity = export_version(
        net,
        registry=registry,
        labels=labels,
        image_size=image_size,
        temperature=1.0,
        thresholds=0.5,
        metrics={"test_macro_f1": 0.0},
        dataset_fingerprint="bench",
        val_images=parity_images,
        backbone=backbone,
    )
    registry.promote(version, force=True)
    return BenchModel(
        registry_root=registry_root,
        version=version,
        backbone=backbone,
        image_size=image_size,
        labels=labels,
        weights=str(built.weights_source),
        parity=parity.as_dict(),
        net=net,
    )
