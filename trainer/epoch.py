"""One training epoch and what it steps through, built once per run.

Cross-entropy weighted by inverse class size (bounded for very small classes), with label smoothing (or a
margin loss over a cosine head, see `trainer.losses`); AdamW with a linear warm-up and cosine decay
per step; bf16 autocast and channels_last on a GPU. `trainer.loop.fit` and the training benchmark
(bench/train.py) run the very same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from trainer.dataset import Item, ItemDataset
from trainer.ddp import DistContext
from trainer.losses import make_criterion

if TYPE_CHECKING:
    from catalog.settings_sections import TrainSettings

# On a GPU the progress line reads the device-side loss every this many steps (see train_epoch).
PROGRESS_EVERY = 20


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


def class_weights(targets: list[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the samples, with no class counted as smaller than a
    quarter of the median class: classes of comparable size count the same in the loss, and a
    character added with a handful of pictures beside ones with hundreds counts as a quarter of a
    typical one. Unbounded, each picture of such a character counted some fifty times one of the
    others, and the net gave that name to whatever it was unsure of (15 characters of the dev set
    beside 8 from JLaoo posts: a class of 9 pictures took 25 test faces of 13 others, precision
    0.04). Weighing every class by the inverse square root of its size instead also stopped that,
    but named 3 to 4 points more strangers on the dev set, whose classes are within 1.5x of each
    other (docs/open-world.md)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts[counts > 0]
    floor = max(1.0, 0.25 * float(np.median(present))) if present.size else 1.0
    raw = 1.0 / np.maximum(counts, floor)
    weights = raw * len(targets) / max(1e-12, float((counts * raw).sum()))
    return torch.tensor(weights, dtype=torch.float32)


def warmup_cosine(total_steps: int, warmup_steps: int, min_fraction: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


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
