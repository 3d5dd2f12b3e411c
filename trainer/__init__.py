"""Catalog to a calibrated, checked ONNX model: dataset, splits, torch training, reports, export."""

from catalog.errors import CatalogError


class TrainingError(CatalogError):
    """Training cannot go on (bad dataset, unreadable checkpoint); the active model is untouched."""
