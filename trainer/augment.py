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
- Low resolution (`LowResolution`): a face in a group picture or a small post is often 40-80 px
  wide, and its crop is enlarged to the input size; training crops come mostly from larger faces.
  Held-out one-face posts scaled to a third were named right 94 times of 115 against 106 at full
  size, the misses mostly "a character I don't know" (23-character JLaoo + dev-set model). Off by
  default (`TrainSettings.low_resolution`): it made small faces safer but the memory named more
  strangers (docs/open-world.md).
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


class LowResolution(torch.nn.Module):
    """Shrinks a CxHxW image to `smallest`-`largest` of its side and enlarges it back, as a small
    face's crop is enlarged to the input size (`media.crop.crop_square`: area down, linear up)."""

    def __init__(self, smallest: float = 0.25, largest: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < smallest <= largest <= 1.0:
            raise ValueError(f"expected 0 < smallest <= largest <= 1, got {smallest} and {largest}")
        self.smallest, self.largest = smallest, largest

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        share = self.smallest + (self.largest - self.smallest) * float(torch.rand(()))
        small = [max(1, round(height * share)), max(1, round(width * share))]
        shrunk = v2.functional.resize(image, small, antialias=True)
        return v2.functional.resize(
            shrunk, [height, width], interpolation=v2.InterpolationMode.BILINEAR, antialias=False
        )


def train_transform(image_size: int, low_resolution: float = 0.0) -> v2.Compose:
    """`low_resolution`: the share of training faces `LowResolution` shrinks (0: none)."""
    # Off, the step is left out rather than applied with p=0: RandomApply draws a random number
    # either way, and a run without it must train exactly as before it existed (same seed, same net).
    shrink = [v2.RandomApply([LowResolution()], p=low_resolution)] if low_resolution > 0 else []
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.65, 1.0), ratio=(0.85, 1.18), antialias=True),
            *shrink,
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


def describe(low_resolution: float = 0.0) -> list[str]:
    """The choices above, one line each, for the resolved config and the report."""
    return [
        "RandomResizedCrop(scale=0.65-1.0, ratio=0.85-1.18)",
        f"LowResolution(shrunk to 25-70% of the side and enlarged back, p={low_resolution:g})",
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
