"""The training loop, short enough to read in one sitting: `fit` runs the epochs (`trainer.epoch`),
scores validation macro-F1 after every epoch, which picks the best checkpoint and drives early
stopping, and writes the checkpoints (`trainer.checkpoints`). Every epoch writes `last.pt` (model,
optimizer, scheduler, history), so an interrupted run resumes where it stopped; random state is
re-seeded from (seed, epoch) at the start of each epoch, so a resumed run draws the same batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.checkpoints import BEST, CHECKPOINT_FORMAT, LAST, _atomic_save, load_checkpoint
from trainer.dataset import Item
from trainer.ddp import DistContext
from trainer.epoch import LoopConfig, prepare_training, train_epoch
from trainer.evaluate import cross_entropy, macro_f1, predict_logits
from trainer.progress import ProgressOption, counter, progress_display

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    lr: float
    seconds: float
    train_samples: int = 0  # seen by this rank: with DDP, about 1/world_size of the training set


@dataclass
class History:
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = -1
    best_val_macro_f1: float = -1.0
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "best_val_macro_f1": self.best_val_macro_f1,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            epochs=[EpochStats(**e) for e in data["epochs"]],
            best_epoch=int(data["best_epoch"]),
            best_val_macro_f1=float(data["best_val_macro_f1"]),
            stopped_early=bool(data["stopped_early"]),
        )


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def fit(
    net: nn.Module,
    *,
    train_items: list[Item],
    val_items: list[Item],
    labels: list[str],
    loader: Callable[[Item], np.ndarray],
    transform: Callable[[torch.Tensor], torch.Tensor],
    config: LoopConfig,
    device: torch.device,
    run_dir: Path,
    meta: dict[str, Any],
    dist_ctx: DistContext | None = None,
    resume: dict[str, Any] | None = None,
    progress: ProgressOption = True,
    on_epoch: Callable[[EpochStats, int], None] | None = None,
    time_budget_s: float | None = None,
) -> History:
    """Train `net` in place; afterwards it holds the weights of the best validation epoch.
    `progress` shows each epoch's steps on rank 0 (see trainer.progress)."""
    dist_ctx = dist_ctx or DistContext()
    class_index = {label: i for i, label in enumerate(labels)}
    training = prepare_training(
        net,
        train_items=train_items,
        labels=labels,
        loader=loader,
        transform=transform,
        config=config,
        device=device,
        dist_ctx=dist_ctx,
    )
    optimizer, schedule = training.optimizer, training.schedule
    on_gpu = training.on_gpu
    history = History()
    start_epoch = 0
    if resume is not None:
        net.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["scheduler"])
        history = History.from_dict(resume["history"])
        start_epoch = int(resume["epoch"]) + 1
        log.info("resuming at epoch %d of %d", start_epoch + 1, config.epochs)
    best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    if resume is not None and (run_dir / BEST).is_file():
        best_state = load_checkpoint(run_dir / BEST)["model"]

    with progress_display(progress if dist_ctx.is_main else False) as display:
        started = time.monotonic()
        for epoch in range(start_epoch, config.epochs):
            epoch_start = time.monotonic()
            step = counter(display, f"epoch {epoch + 1}/{config.epochs}", training.steps_per_epoch)
            totals = train_epoch(training, epoch, step)

            # Rank 0 scores validation on the plain module (no collective calls) and tells the others.
            decision: dict[str, Any] | None = None
            if dist_ctx.is_main:
                y_val = np.array([class_index[i.label] for i in val_items], dtype=np.int64)
                val_logits = predict_logits(
                    net,
                    val_items,
                    loader,
                    device=device,
                    batch_size=config.batch_size * 2,
                    channels_last=on_gpu,
                )
                val_pred = val_logits.argmax(1) if len(val_logits) else np.zeros(0, dtype=np.int64)
                stats = EpochStats(
                    epoch=epoch,
                    train_loss=totals.loss,
                    train_accuracy=totals.accuracy,
                    val_loss=cross_entropy(val_logits, y_val),
                    val_accuracy=float((val_pred == y_val).mean()) if len(y_val) else 0.0,
                    val_macro_f1=macro_f1(y_val, val_pred, len(labels)),
                    lr=float(schedule.get_last_lr()[0]),
                    seconds=time.monotonic() - epoch_start,
                    train_samples=totals.samples,
                )
                history.epochs.append(stats)
                improved = stats.val_macro_f1 > history.best_val_macro_f1
                if improved:
                    history.best_epoch, history.best_val_macro_f1 = epoch, stats.val_macro_f1
                    best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                    _atomic_save(
                        {"format": CHECKPOINT_FORMAT, "model": best_state, **meta, "epoch": epoch},
                        run_dir / BEST,
                    )
                stale = epoch - history.best_epoch
                out_of_time = time_budget_s is not None and time.monotonic() - started > time_budget_s
                history.stopped_early = (
                    stale >= config.patience or out_of_time
                ) and epoch + 1 < config.epochs
                _atomic_save(
                    {
                        "format": CHECKPOINT_FORMAT,
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": schedule.state_dict(),
                        "history": history.as_dict(),
                        "epoch": epoch,
                        **meta,
                    },
                    run_dir / LAST,
                )
                log.info(
                    "epoch %d/%d: train loss %.3f acc %.3f | val loss %.3f acc %.3f macro-F1 %.3f%s (%.1fs)",
                    epoch + 1,
                    config.epochs,
                    stats.train_loss,
                    stats.train_accuracy,
                    stats.val_loss,
                    stats.val_accuracy,
                    stats.val_macro_f1,
                    " *" if improved else "",
                    stats.seconds,
                )
                if on_epoch is not None:
                    on_epoch(stats, config.epochs)
                decision = {"stop": history.stopped_early}
                if history.stopped_early:
                    log.info(
                        "stopping early after epoch %d: %s",
                        epoch + 1,
                        "time budget spent" if out_of_time else f"no better val macro-F1 for {stale} epochs",
                    )
            decision = dist_ctx.broadcast(decision)
            if decision["stop"]:
                break

    if dist_ctx.is_main:  # only rank 0 evaluates and exports
        net.load_state_dict(best_state)
    return history
