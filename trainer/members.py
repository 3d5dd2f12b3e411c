"""Training a run's net: one, or `NAMAE_TRAIN__MEMBERS` of them on the same split, joined into one
`trainer.ensemble.Ensemble` that the evaluation, the open-set fit and the export then treat as one.

Member 1 is the run as it always was (its seed, its checkpoints in the run folder), so a run of one
member is exactly today's run; member k trains with seed + k - 1 in `<run>/member-k/`, from the
same ImageNet weights, on the same split and the same frozen test set. A resumed run continues each
member from its own `last.pt` where it has one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from catalog.settings import Settings
from catalog.settings_sections import TrainSettings
from trainer import augment, backbones, ddp
from trainer.checkpoints import LAST, load_checkpoint
from trainer.dataset import Item, PixelLoader
from trainer.ensemble import Ensemble
from trainer.epoch import LoopConfig
from trainer.loop import EpochStats, History, fit, seed_everything
from trainer.progress import Display

log = logging.getLogger(__name__)


@dataclass
class Trained:
    built: backbones.BuiltBackbone  # what is evaluated and exported: the one net, or the ensemble
    histories: list[History]  # per member, member 1 first


def build_member(settings: Settings, cfg: TrainSettings, classes: int) -> backbones.BuiltBackbone:
    return backbones.build(
        cfg.backbone,
        classes,
        cfg.image_size,
        weights_dir=settings.data_dir / "weights",
        loss=cfg.loss,
        middle=settings.memory.middle,
    )


def member_dir(run_dir: Path, index: int) -> Path:
    """Member `index` (0-based)'s checkpoints: the run folder itself for the first."""
    return run_dir if index == 0 else run_dir / f"member-{index + 1}"


def train_members(
    first: backbones.BuiltBackbone,
    *,
    settings: Settings,
    cfg: TrainSettings,
    labels: list[str],
    train_items: list[Item],
    val_items: list[Item],
    loader: PixelLoader,
    device: torch.device,
    run_dir: Path,
    dist_ctx: ddp.DistContext,
    resume: dict[str, Any] | None,
    display: Display | None,
    on_progress: Callable[[float, str], None],
) -> Trained:
    """Train `first` (built and seeded by the caller) and `cfg.members - 1` more; afterwards each
    holds its best validation epoch's weights."""
    count = cfg.members
    builts: list[backbones.BuiltBackbone] = []
    histories: list[History] = []
    for index in range(count):
        folder = member_dir(run_dir, index)
        member_resume = resume
        if index == 0:
            built = first
        else:
            seed_everything(cfg.seed + index)
            built = build_member(settings, cfg, len(labels))
            if dist_ctx.is_main:
                folder.mkdir(parents=True, exist_ok=True)
            member_resume = (
                load_checkpoint(folder / LAST) if resume is not None and (folder / LAST).is_file() else None
            )
        if count > 1 and dist_ctx.is_main:
            log.info(
                "member %d of %d: seed %d, checkpoints in %s", index + 1, count, cfg.seed + index, folder
            )

        def on_epoch(stats: EpochStats, total: int, index: int = index) -> None:
            done = (index + (stats.epoch + 1) / total) / count
            member = f"member {index + 1}/{count}, " if count > 1 else ""
            on_progress(
                0.05 + 0.8 * done,
                f"{member}epoch {stats.epoch + 1}/{total}: val macro-F1 {stats.val_macro_f1:.3f}",
            )

        histories.append(
            fit(
                built.net,
                train_items=train_items,
                val_items=val_items,
                labels=labels,
                loader=loader,
                transform=augment.train_transform(cfg.image_size, cfg.low_resolution),
                config=dataclasses.replace(LoopConfig.from_settings(cfg), seed=cfg.seed + index),
                device=device,
                run_dir=folder,
                meta={
                    "labels": labels,
                    "backbone": cfg.backbone,
                    "image_size": cfg.image_size,
                    "loss": cfg.loss,
                    "member": index + 1,
                },
                dist_ctx=dist_ctx,
                resume=member_resume,
                progress=display or False,
                on_epoch=on_epoch,
            )
        )
        builts.append(built)
    if count == 1:
        return Trained(first, histories)
    joined = backbones.BuiltBackbone(
        Ensemble([b.net for b in builts]), first.name, first.pretrained, first.weights_source
    )
    return Trained(joined, histories)
