"""A tiny torch net with the trainer's interface (forward_features + head), for tests that need a
real ONNX export without waiting for a trained model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.models.helpers import IMAGE_SIZE, LABELS, random_images, stage_version

__all__ = ["IMAGE_SIZE", "LABELS", "TinyNet", "random_images", "stage_version"]


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = len(LABELS), width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)
        # Non-trivial BatchNorm statistics, so that eval mode matters for parity.
        with torch.no_grad():
            bn = self.body[1]
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def torch_probabilities(images: list[np.ndarray], temperature: float) -> np.ndarray:
    """What the tiny net itself says of raw RGB images, through the shared preprocessing."""
    from models import preprocess
    from models.openset import softmax
    from trainer.export import normalize_batch

    with torch.inference_mode():
        logits = TinyNet(seed=0)(normalize_batch(preprocess.to_batch(images, IMAGE_SIZE))).numpy()
    return softmax(logits, 1.0 / temperature)
