"""The training loop, short enough to read in one sitting.

Class-balanced cross-entropy with label smoothing (or a margin loss over a cosine head, see
`trainer.losses`); AdamW with a linear warm-up and cosine decay per
step; bf16 autocast and channels_last on a GPU; validation macro-F1 after every epoch picks the best
checkpoint and drives early stopping. Every epoch writes `last.pt` (model, optimizer, scheduler,
history), so an interrupted run resumes where it stopped; random state is re-seeded from
(seed, epoch) at the start of each epoch, so a resumed run draws the same batches.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from trainer import TrainingError
from trainer.dataset import Item, ItemDataset
from trainer.ddp import DistContext
from trainer.evaluate import cross_entropy, macro_f1, predict_logits
from trainer.losses import make_criterion
from trainer.progress import ProgressOption, counter, progress_display

if TYPE_CHECKING:
    from catalog.settings_sections import TrainSettings

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# On a GPU the progress line reads the device-side loss every this many steps (see train_epoch).
PROGRESS_EVERY = 20
LAST = "last.pt"
BEST = "best.pt"


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    seed: int
    warmup_epochs: float = 1.0
    patience: int = 5
    num_workers: int = 0
    min_lr_fraction: float = 0.02
    loss: str = "cross_entropy"
    margin: float = 0.2

    @classmethod
    def from_settings(cls, train: TrainSettings) -> LoopConfig:
        return cls(
            epochs=train.epochs,
            batch_size=train.batch_size,
            lr=train.lr,
            weight_decay=train.weight_decay,
            label_smoothing=train.label_smoothing,
            seed=train.seed,
            num_workers=train.num_workers,
            loss=train.loss,
            margin=train.margin,
        )


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


def class_weights(targets: list[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the samples: every class counts the same in the loss."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = len(targets) / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def warmup_cosine(total_steps: int, warmup_steps: int, min_fraction: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _atomic_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by this loop, or a TrainingError that says what is wrong with the file."""
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise TrainingError(f"checkpoint {path} is corrupt or not a namae checkpoint: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT or "model" not in data:
        raise TrainingError(
            f"checkpoint {path} is not a namae training checkpoint (format {CHECKPOINT_FORMAT})"
        )
    return data


def check_compatible(
    checkpoint: dict[str, Any],
    *,
    labels: list[str],
    backbone: str,
    image_size: int,
    loss: str = "cross_entropy",
) -> None:
    mismatches = []
    if checkpoint.get("loss", "cross_entropy") != loss:
        mismatches.append(f"loss {checkpoint.get('loss', 'cross_entropy')} != {loss}")
    if checkpoint.get("labels") != labels:
        mismatches.append("classes differ")
    if checkpoint.get("backbone") != backbone:
        mismatches.append(f"backbone {checkpoint.get('backbone')} != {backbone}")
    if checkpoint.get("image_size") != image_size:
        mismatches.append(f"image size {checkpoint.get('image_size')} != {image_size}")
    if mismatches:
        raise TrainingError(f"the checkpoint cannot resume this run: {'; '.join(mismatches)}")


@dataclass
class Training:
    """Everything one training epoch steps through, built once per run by `prepare_training`:
    `fit` and the training benchmark (bench/train.py) run the very same epochs through it."""

    net: nn.Module  # the plain module: evaluation, checkpoints and gradient clipping use it
    model: nn.Module  # what the forward pass calls: `net`, or its DDP wrapper
    data: DataLoader
    sampler: DistributedSampler | None
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    seed: int

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.data))


@dataclass(frozen=True)
class EpochTotals:
    loss: float  # mean training loss over the epoch's samples
    accuracy: float
    samples: int  # seen by this rank


def prepare_training(
    net: nn.Module,
    *,
    train_items: list[Item],
    labels: list[str],
    loader: Callable[[Item], np.ndarray],
    transform: Callable[[torch.Tensor], torch.Tensor],
    config: LoopConfig,
    device: torch.device,
    dist_ctx: DistContext | None = None,
) -> Training:
    """Move `net` to `device` and build its data loader, loss, optimizer and LR schedule."""
    dist_ctx = dist_ctx or DistContext()
    class_index = {label: i for i, label in enumerate(labels)}
    dataset = ItemDataset(train_items, class_index, loader, transform)
    on_gpu = device.type == "cuda"
    net.to(device)
    if on_gpu:
        net.to(memory_format=torch.channels_last)
    model: nn.Module = net
    if dist_ctx.enabled:
        model = DistributedDataParallel(net, device_ids=[device.index] if on_gpu else None)

    sampler = (
        DistributedSampler(dataset, dist_ctx.world_size, dist_ctx.rank, shuffle=True, seed=config.seed)
        if dist_ctx.enabled
        else None
    )
    per_rank = math.ceil(len(dataset) / dist_ctx.world_size)
    data = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.num_workers,
        drop_last=per_rank > config.batch_size,  # a last batch of one breaks BatchNorm
        pin_memory=on_gpu,
        persistent_workers=config.num_workers > 0,
    )
    steps_per_epoch = max(1, len(data))
    criterion = make_criterion(
        config.loss,
        weight=class_weights(dataset.targets(), len(labels)).to(device),
        label_smoothing=config.label_smoothing,
        margin=config.margin,
    ).to(device)
    # The fused kernel updates every parameter in one pass instead of a dozen small ops per tensor:
    # same update, 9.2 -> 3.0 ms a step for efficientnet_lite0 on a 2-core CPU (bench/train.py).
    fused = True if device.type in ("cpu", "cuda") else None
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        warmup_cosine(
            config.epochs * steps_per_epoch,
            max(1, round(config.warmup_epochs * steps_per_epoch)),
            config.min_lr_fraction,
        ),
    )
    return Training(net, model, data, sampler, criterion, optimizer, schedule, device, config.seed)


def train_epoch(training: Training, epoch: int, advance: Callable[[str], None] | None = None) -> EpochTotals:
    """One pass over the training data. Random state is re-seeded from (seed, epoch) first, so a
    resumed run draws the same batches and augmentations as an uninterrupted one."""
    t = training
    torch.manual_seed(t.seed * 1000 + epoch)
    if t.sampler is not None:
        t.sampler.set_epoch(epoch)
    t.model.train()
    # Sums stay on the device: reading a GPU value every step would stall the host each step, so
    # that the next batch's augmentation could not overlap the GPU's work. The progress line reads
    # them every PROGRESS_EVERY steps there (every step on the CPU, where reading is free).
    loss_sum = torch.zeros((), dtype=torch.float64, device=t.device)
    correct = torch.zeros((), dtype=torch.int64, device=t.device)
    seen, shown = 0, ""
    for step, (inputs, targets) in enumerate(t.data):
        inputs = inputs.to(t.device, non_blocking=True)
        targets = targets.to(t.device, non_blocking=True)
        if t.on_gpu:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=t.on_gpu):
            logits = t.model(inputs)
            loss = t.criterion(logits.float(), targets)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(t.net.parameters(), 5.0)
        t.optimizer.step()
        t.schedule.step()
        loss_sum += loss.detach().double() * len(targets)
        correct += (logits.argmax(1) == targets).sum()
        seen += len(targets)
        if advance is not None:
            if not t.on_gpu or step % PROGRESS_EVERY == 0:
                shown = f"loss {float(loss_sum) / max(1, seen):.3f}"
            advance(shown)
    return EpochTotals(float(loss_sum) / max(1, seen), int(correct) / max(1, seen), seen)


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
