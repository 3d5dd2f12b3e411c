"""Errors of the model registry and the classifier; each carries a sentence meant for a person."""

from __future__ import annotations

from catalog.errors import CatalogError


class RegistryError(CatalogError):
    """A registry operation was refused or a version folder is unusable; nothing was changed."""


class ModelLoadError(RegistryError):
    """A version folder cannot be loaded: missing or mismatched model.json, an ONNX that won't load."""


class NoActiveModel(RegistryError):
    """The registry has no active version yet."""
