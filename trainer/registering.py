"""Registering a run's model: ONNX export with its parity check on validation images, into the
registry as a candidate version (promotion is the caller's decision).
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Engine

from catalog.settings import Settings
from catalog.settings_sections import TrainSettings
from trainer import backbones, openset_run
from trainer.dataset import Assembled, Item, PixelLoader
from trainer.first_look import FittedFirstLook

# Torch parity, and the int8 graph's agreement with the float one (one swap in 64 faces moved that
# by 1.6 points, across the gate's 0.98).
PARITY_IMAGES = 192
CALIBRATION_IMAGES = 128  # the int8 graph's activation ranges, from validation faces past the parity ones


def _export(
    settings: Settings,
    engine: Engine | None,
    built: backbones.BuiltBackbone,
    labels: list[str],
    cfg: TrainSettings,
    evaluation: dict[str, Any],
    metrics: dict[str, Any],
    assembled: Assembled,
    val_items: list[Item],
    loader: PixelLoader,
    open_world: openset_run.RunOpenSet,
    first_look: FittedFirstLook | None = None,
) -> str:
    from models.registry import Registry
    from trainer.export import export_version

    registry = Registry.from_settings(settings, engine)
    # Validation items come grouped by character: a seeded shuffle, so that the parity faces and the
    # int8 graph's calibration faces cover every character, not the first two or three.
    shuffled = random.Random(cfg.seed).sample(val_items, len(val_items))
    version, parity = export_version(
        built.net.to("cpu").eval(),
        registry=registry,
        labels=labels,
        image_size=cfg.image_size,
        temperature=evaluation["calibration"]["temperature"],
        thresholds=evaluation["calibration"]["threshold"],
        metrics=dict(metrics),
        dataset_fingerprint=assembled.fingerprint(),
        val_images=[loader(item) for item in shuffled[:PARITY_IMAGES]],
        backbone=cfg.backbone,
        extra={
            "pretrained": built.pretrained,
            "weights_source": built.weights_source,
            "loss": cfg.loss,
            "members": cfg.members,
        },
        open_set=open_world.thresholds,
        memory=open_world.memory,
        first_look=first_look,
        int8=True,
        calibration_images=[
            loader(item) for item in shuffled[PARITY_IMAGES : PARITY_IMAGES + CALIBRATION_IMAGES]
        ],
    )
    metrics["parity_max_abs_diff"] = parity.max_abs_diff
    return version
