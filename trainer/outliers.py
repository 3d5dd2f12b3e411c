"""Faces of characters outside the catalog, shown while training so that strangers look like nobody.

Outlier exposure (Hendrycks et al., 2019): beside each batch of labelled faces the net sees a batch of
faces that belong to none of its characters, and a second loss pulls the head's answer for those
towards "every character alike" (the cross-entropy to the uniform distribution). A net trained on
fifteen characters otherwise only learns what tells those fifteen apart, and a stranger who shares
a trained character's hair colour lands right beside them; faces of many other characters teach it
that such a face is not enough to be that character.

The faces come from a folder (`NAMAE_TRAIN__OUTLIERS`, any depth, no labels needed): faces the
cascade finds are cropped as for training, a picture where it finds none is taken whole (a folder
of face crops). Outlier sets are often small thumbnails; so that "blurry" cannot become the net's
sign of a stranger, labelled faces are shrunk the same way now and then (`LowResolution`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from catalog.settings import Settings
from media.decode import DecodeLimits, ImageRejected, decode_image
from models.preprocess import prepare
from trainer import TrainingError
from trainer.augment import to_chw
from trainer.dataset import one_thread
from trainer.folder_source import IMAGE_SUFFIXES, face_cropper
from trainer.progress import Display, counter

log = logging.getLogger(__name__)


def load_outliers(
    root: Path, settings: Settings, image_size: int, *, limit: int, progress: Display | None = None
) -> list[np.ndarray]:
    """Prepared pixels of up to `limit` faces under `root` (sorted paths, the first `limit`)."""
    if not root.is_dir():
        raise TrainingError(f"outliers {root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"outliers {root}: no image files")
    cropper = face_cropper(settings)
    limits = DecodeLimits(settings.images)
    faces: list[np.ndarray] = []
    step = counter(progress, f"reading {min(len(files), limit)} outlier pictures", min(len(files), limit))
    skipped = 0
    for path in files:
        if len(faces) >= limit:
            break
        step("")
        try:
            rgb = decode_image(limits.read_file(path), settings.images).rgb
        except (ImageRejected, OSError):
            skipped += 1
            continue
        crops = cropper.crops(rgb, image_size) if cropper is not None else []
        faces.extend(prepare(crop, image_size) for crop in (crops or [rgb]))
    if skipped:
        log.warning("outliers: %d unreadable or rejected pictures skipped", skipped)
    log.info("outliers: %d faces from %s", len(faces[:limit]), root)
    return faces[:limit]


class OutlierDataset(torch.utils.data.Dataset):
    def __init__(self, faces: list[np.ndarray], transform: v2.Transform) -> None:
        self.faces = faces
        self.transform = transform

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> torch.Tensor:
        with one_thread():
            return self.transform(to_chw(self.faces[index]))


class LowResolution(torch.nn.Module):
    """Shrink a uint8 CHW image to a side in [low, high] and enlarge it back: a thumbnail's look."""

    def __init__(self, low: int = 48, high: int = 96) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        side = int(torch.randint(self.low, self.high + 1, ()).item())
        size = image.shape[-2:]
        small = v2.functional.resize(image, [side, side], antialias=True)
        return v2.functional.resize(small, list(size), antialias=True)


def with_low_resolution(transform: v2.Compose, p: float = 0.25) -> v2.Compose:
    """`transform` with `LowResolution` applied first, with probability p."""
    return v2.Compose([v2.RandomApply([LowResolution()], p=p), transform])


def uniform_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the head's answer to the uniform distribution over the characters."""
    return -F.log_softmax(logits, dim=1).mean(dim=1).mean()
