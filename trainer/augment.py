"""Training-time augmentation for drawings, on the uint8 pixels `models.preprocess.prepare` made.

Choices, and why:
- RandomResizedCrop(scale 0.65-1, near-square ratios): face crops from the detector are loose and
  off-centre by a few pixels; zooming in teaches the same.
- Horizontal flip: characters are drawn facing either way; a hair clip on the left is still the
  same character.
- Small affine (rotation up to 12 degrees, 6% translation): heads tilt; white fill matches the
  white padding of `prepare`.
- ColorJitter with brightness/contrast/saturation only and NO hue shift, no grayscale: hair and eye
  colour carry most of an anime character's identity, and a hue shift turns pink hair red or blue
  hair teal. Brightness/contrast stay within +-20%, saturation +-15%, like different scans,
  screenshots and lighting, which keep the hue.
- Light Gaussian blur: downscaled and re-encoded images (JPEG, thumbnails).
- RandomErasing of small patches: speech bubbles, text and hands cover part of a face.
Evaluation uses no augmentation at all: only `prepare` plus normalization.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from models.preprocess import MEAN, PAD_VALUE, STD


def normalize() -> v2.Compose:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


def train_transform(image_size: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.65, 1.0), ratio=(0.85, 1.18), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply(
                [v2.RandomAffine(degrees=12, translate=(0.06, 0.06), fill=PAD_VALUE)],
                p=0.5,
            ),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.0),
            v2.RandomApply([v2.GaussianBlur(kernel_size=3, sigma=(0.1, 1.0))], p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomErasing(p=0.25, scale=(0.02, 0.08), ratio=(0.5, 2.0), value=1.0),
            v2.Normalize(MEAN, STD),
        ]
    )


def describe() -> list[str]:
    """The choices above, one line each, for the resolved config and the report."""
    return [
        "RandomResizedCrop(scale=0.65-1.0, ratio=0.85-1.18)",
        "RandomHorizontalFlip(p=0.5)",
        "RandomAffine(degrees=12, translate=6%, white fill, p=0.5)",
        "ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0): hair colour never changes",
        "GaussianBlur(3, sigma 0.1-1.0, p=0.2)",
        "RandomErasing(p=0.25, 2-8% of the image)",
    ]


def to_chw(prepared: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 (from `prepare`) -> 3xHxW uint8 tensor."""
    return torch.from_numpy(np.array(prepared, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def batch_to_input(batch_nhwc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Prepared NHWC uint8 -> normalized float NCHW, exactly what the exported graph computes."""
    tensor = torch.as_tensor(batch_nhwc).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (tensor - mean) / std
