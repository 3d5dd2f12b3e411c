"""Catalog to a calibrated, checked ONNX model: dataset, splits, torch training, reports, export."""

from pathlib import Path

from catalog.errors import CatalogError


class TrainingError(CatalogError):
    """Training cannot go on (bad dataset, unreadable checkpoint); the active model is untouched."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped (Ctrl-C, SIGTERM). `checkpoint` is the run's last.pt, which holds the
    last finished epoch, or None when the first epoch had not finished."""

    def __init__(self, run_dir: Path, checkpoint: Path | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.checkpoint = checkpoint
