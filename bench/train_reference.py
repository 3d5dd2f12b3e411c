"""The baseline of `bench.train`: the textbook torchvision training loop (a Dataset over prepared
pixels with `transforms.v2`, DataLoader(shuffle=True), AdamW, cross-entropy), nothing else."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from trainer import augment


class PixelsDataset(Dataset):
    """The same prepared HxWx3 uint8 pixels our loop trains on, as a plain map-style dataset."""

    def __init__(self, images: list[np.ndarray], targets: list[int], transform: v2.Transform) -> None:
        # writable copies: torch.from_numpy warns on the read-only arrays PIL hands out
        self.images = [np.array(image, copy=True) for image in images]
        self.targets = targets
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]


def reference_augmentation(image_size: int) -> v2.Compose:
    """The textbook augmentation, on the 3xHxW uint8 tensors our dataset hands out."""
    return v2.Compose(
        [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip(), augment.normalize()]
    )


class ReferenceLoop:
    def __init__(
        self,
        net: nn.Module,
        images: list[np.ndarray],
        targets: list[int],
        *,
        image_size: int,
        batch_size: int,
        lr: float,
        device: torch.device,
        seed: int,
    ) -> None:
        transform = v2.Compose([v2.ToImage(), reference_augmentation(image_size)])
        self.net = net.to(device)
        self.data = DataLoader(PixelsDataset(images, targets, transform), batch_size=batch_size, shuffle=True)
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
        self.criterion = nn.CrossEntropyLoss()
        self.device = device
        self.seed = seed

    def epoch(self, epoch: int) -> int:
        # A textbook script seeds once; the interleaved loops share the global RNG, so this one is
        # re-seeded per epoch (apart from ours) to draw the same batches whatever ran before it.
        torch.manual_seed(self.seed * 1000 + 500 + epoch)
        self.net.train()
        seen = 0
        for inputs, targets in self.data:
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            self.optimizer.zero_grad()
            loss = self.criterion(self.net(inputs), targets)
            loss.backward()
            self.optimizer.step()
            seen += len(targets)
        return seen

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], batch_size: int) -> np.ndarray:
        transform = v2.Compose([v2.ToImage(), augment.normalize()])
        data = DataLoader(PixelsDataset(images, [0] * len(images), transform), batch_size=batch_size)
        self.net.eval()
        return np.concatenate([self.net(x.to(self.device)).argmax(1).cpu().numpy() for x, _ in data])
