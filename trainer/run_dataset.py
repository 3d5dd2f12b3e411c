"""A run's data: the labelled set from a folder or the catalog, filtered and capped, split around
the frozen test set kept for that data source (one for the catalog, one per training folder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Engine

from catalog.object_backends import open_objects
from catalog.objects import ObjectStore
from catalog.settings import Settings
from catalog.settings_sections import TrainSettings
from trainer import TrainingError
from trainer.catalog_source import from_catalog
from trainer.dataset import Assembled, check_trainable, filter_classes
from trainer.folder_source import from_folder
from trainer.progress import Display
from trainer.splits import FrozenTestSet, Split, split


def frozen_test_key(from_folder: Path | None) -> str:
    """One frozen test set per data source: the catalog's, or one per training folder."""
    if from_folder is None:
        return "catalog.json"
    digest = hashlib.sha256(str(from_folder.resolve()).encode()).hexdigest()[:12]
    return f"folder-{from_folder.name}-{digest}.json"


def frozen_test_store(settings: Settings) -> ObjectStore:
    """Where frozen test sets live: beside the images and models, so that a retrain on another
    machine is measured on the same test images (the promotion gate compares like with like)."""
    return open_objects(settings, "frozen_test")


def _dataset(
    settings: Settings,
    engine: Engine | None,
    cfg: TrainSettings,
    from_folder: Path | None,
    display: Display | None = None,
) -> tuple[Assembled, Split]:
    if from_folder is not None:
        assembled = from_folder_dataset(from_folder, settings, cfg.image_size, display)
    elif engine is None:
        raise TrainingError("no catalog to train from: give a database or --from-folder DIR")
    else:
        assembled = from_catalog(engine, settings, progress=display)
    frozen = FrozenTestSet.load(frozen_test_store(settings), frozen_test_key(from_folder))
    filter_classes(
        assembled,
        min_images=cfg.min_images_per_class,
        max_images=cfg.max_images_per_class,
        seed=cfg.seed,
        keep=set(frozen.members),
    )
    check_trainable(assembled, cfg.min_images_per_class)
    data_split = split(
        assembled.items,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        frozen=frozen,
        train_only=[i for i, item in enumerate(assembled.items) if item.train_only],
    )
    return assembled, data_split


def from_folder_dataset(
    folder: Path, settings: Settings, image_size: int, display: Display | None = None
) -> Assembled:
    return from_folder(folder, settings, image_size, progress=display)
