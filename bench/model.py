"""The default model for benchmarks that need one, exported through the real export path.

Latency does not depend on what the weights learned, so the benchmarks do not train: they take the
trainer's default backbone with its ImageNet weights (an offline package) and a fresh head, export
it with `trainer.export.export_version` (ONNX checker and torch parity included) into a registry
and make it active. Needs the `train` extra (torch); the bot's own install never imports this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    int8: dict[str, object] | None = None  # the card's int8 entry; None: the float graph only
    # `members` > 1: member 1 alone, exported beside it as its own candidate version (its graphs
    # are what a version of several members ships as its first look, `models.card.FirstLook`)
    first_version: str | None = None


def export_default_model(
    registry_root: Path,
    *,
    classes: int = 20,
    image_size: int | None = None,
    backbone: str | None = None,
    seed: int = 1234,
    members: int = 1,
) -> BenchModel:
    """Export and activate the default backbone (as `Settings().train` names it) in `registry_root`,
    with its int8 graph as training ships it (calibrated and checked on drawing-like pictures).
    `members` > 1: that many nets (fresh heads from seeds seed, seed + 1, ...) as one graph, as
    `NAMAE_TRAIN__MEMBERS` exports them (`trainer.ensemble`)."""
    import torch

    from catalog.settings_sections import MemorySettings, TrainSettings
    from models.int8 import probe_batch
    from models.registry import Registry
    from trainer.backbones import build
    from trainer.ensemble import Ensemble
    from trainer.export import export_version

    defaults = TrainSettings()
    backbone = backbone or defaults.backbone
    image_size = image_size or defaults.image_size
    # the graph a trained version exports: the middle features in its embedding at the trainer's weight
    middle = MemorySettings().middle
    nets = []
    for index in range(members):
        torch.manual_seed(seed + index)
        built = build(backbone, classes, image_size, pretrained=True, allow_download=False, middle=middle)
        nets.append(built.net)
    net = (nets[0] if members == 1 else Ensemble(nets)).to("cpu").eval()
    labels = [f"character_{i:02d}" for i in range(classes)]
    # Drawing-like pictures (the bot's int8 check uses the same kind): noise is not what the graph
    # sees, and its activations reach past any calibrated range.
    parity_images = list(probe_batch(image_size, count=48, seed=seed))
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
        int8=True,
        calibration_images=list(probe_batch(image_size, count=64, seed=seed + 1)),
        # Untrained weights tie their classes, so the agreement check means nothing here (a trained
        # model's int8 graph: top-1 agreement 0.995 on held-out faces); only its time is measured.
        int8_gate=False,
    )
    first_version = None
    if members > 1:
        first_version, _ = export_version(
            nets[0], registry=registry, labels=labels, image_size=image_size, temperature=1.0,
            thresholds=0.5, metrics={"test_macro_f1": 0.0}, dataset_fingerprint="bench",
            val_images=parity_images, backbone=backbone, int8=True,
            calibration_images=list(probe_batch(image_size, count=64, seed=seed + 1)), int8_gate=False,
        )  # fmt: skip
    registry.promote(version, force=True)
    card = registry.card(version)
    return BenchModel(
        registry_root=registry_root,
        version=version,
        backbone=backbone,
        image_size=image_size,
        labels=labels,
        weights=str(built.weights_source),
        parity=parity.as_dict(),
        net=net,
        int8=card.int8.model_dump() if card.int8 is not None else None,
        first_version=first_version,
    )
