"""A training run's folder: train.log (the trainer's and the exporter's INFO, whatever the console
shows), config.json (how the run was started: settings, device, backbone, dataset), and reading that
config.json back so that resuming continues the run it belongs to.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from catalog.object_backends import open_objects
from catalog.settings import Settings
from catalog.settings_sections import TrainSettings
from trainer import TrainingError, augment, backbones, ddp
from trainer.dataset import Assembled
from trainer.splits import Split


def _attach_log_file(run_dir: Path) -> tuple[logging.Handler, dict[str, int]]:
    """train.log in the run folder gets INFO from the trainer and the exporter, whatever the
    console shows; the loggers' previous levels come back afterwards."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    previous = {}
    for name in ("trainer", "models"):
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler, previous


def _detach_log_file(handler: logging.Handler, previous: dict[str, int]) -> None:
    for name, level in previous.items():
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.setLevel(level)
    handler.close()


@dataclass(frozen=True)
class RecordedRun:
    """What a run was started with, from its config.json."""

    train: TrainSettings
    from_folder: Path | None


def recorded_run(checkpoint: Path) -> RecordedRun | None:
    """The settings and folder of the run that wrote `checkpoint` (None for a checkpoint outside
    a run folder), so that resuming continues that run and not one with today's settings."""
    path = checkpoint.parent / "config.json"
    try:
        config = json.loads(path.read_text())
        folder = config.get("from_folder")
        return RecordedRun(TrainSettings.model_validate(config["train"]), Path(folder) if folder else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot resume: {path} does not say how the run was started ({exc})") from None


def _resolved_config(
    settings: Settings,
    cfg: TrainSettings,
    device_name: str,
    dist_ctx: ddp.DistContext,
    assembled: Assembled,
    data_split: Split,
    built: backbones.BuiltBackbone,
    from_folder: Path | None,
) -> dict[str, Any]:
    return {
        "train": cfg.model_dump(mode="json"),
        "device": device_name,
        "world_size": dist_ctx.world_size,
        "from_folder": str(from_folder.resolve()) if from_folder else None,
        "backbone": {
            "name": built.name,
            "pretrained": built.pretrained,
            "weights_source": built.weights_source,
            # the middle features' weight in the exported embedding (0: the last features alone)
            "middle": built.net.middle,
        },
        "augmentation": augment.describe(cfg.low_resolution),
        "optimizer": "AdamW, linear warm-up 1 epoch, cosine decay per step",
        "loss": (
            f"class-balanced cross-entropy, label smoothing {cfg.label_smoothing}"
            if cfg.loss == "cross_entropy"
            else f"class-balanced {cfg.loss}, margin {cfg.margin}, cosine head"
        ),
        "mixed_precision": "bf16 autocast + channels_last"
        if device_name.startswith("cuda")
        else "fp32 (CPU)",
        "dataset": {
            "source": assembled.source,
            "images": len(assembled.items),
            "classes": assembled.counts(),
            "train": len(data_split.train),
            "val": len(data_split.val),
            "test": len(data_split.test),
            "fingerprint": assembled.fingerprint(),
            "test_set_fingerprint": data_split.frozen.fingerprint(),
            "new_test_classes": data_split.new_test_classes,
            "skipped": dict(assembled.skipped),
            "picked_from_groups": dict(assembled.picked),
            "dropped_classes": assembled.dropped_classes,
            "capped_classes": assembled.capped_classes,
            "warnings": assembled.warnings,
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "registry": open_objects(settings, "models").location,
    }
