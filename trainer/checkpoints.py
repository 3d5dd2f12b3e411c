"""Training checkpoints: `last.pt` (every epoch: model, optimizer, scheduler, history, to resume
from) and `best.pt` (the best validation epoch's model) in the run folder, written atomically, read
back with a clear error for a file that is not one of ours, and checked against the run resumed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from trainer import TrainingError

CHECKPOINT_FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"


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
