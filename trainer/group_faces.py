"""Which face of a picture with several is the character its folder names.

A folder of posts holds group pictures: in the JLaoo posts of eight New Game! characters, 195 of
530 pictures show several faces, and which of them is the folder's character is not written
anywhere. The active model answers every face through the one answer path (`models.answer`), and a
face is kept only when it is the one face named as that character; otherwise the picture is
skipped, as it is without a model. Faces chosen this way train, but never judge a model: they are
the ones the previous model already names, so they stay out of validation and test
(`trainer.splits.split`'s `train_only`).

Off unless `train.pick_group_faces` is set: measured once (docs/posts-and-scenes.md), the model
trained again with the 172 faces its predecessor chose named group pictures a little more often
and everything else a little worse.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from catalog.errors import CatalogError
from catalog.settings import Settings
from media.boxes import Box
from models.answer import answer_pixels
from models.classifier import Classifier
from models.openset import Kind
from models.registry import Registry

if TYPE_CHECKING:
    from media.faces import FaceFinder

log = logging.getLogger(__name__)


class GroupFacePicker:
    """A model and the finder the trainer crops with, answering pictures with several faces."""

    def __init__(self, classifier: Classifier, finder: FaceFinder, version: str) -> None:
        self.classifier = classifier
        self.finder = finder
        self.version = version

    def pick(self, rgb: np.ndarray, label: str) -> Box | None:
        """The box of the one face named `label`; None when no face or more than one is."""
        named = [
            answer.box
            for answer in answer_pixels(rgb, model=self.classifier, finder=self.finder)
            if answer.box is not None
            and answer.kind is Kind.NAME
            and answer.best is not None
            and answer.best.label == label
        ]
        return named[0] if len(named) == 1 else None


def group_face_picker(settings: Settings, finder: FaceFinder) -> GroupFacePicker | None:
    """The active model as a picker, or None (setting off, no active model, or one that cannot be
    loaded: then pictures with several faces are skipped, and the log says why)."""
    if not settings.train.pick_group_faces:
        return None
    try:
        registry = Registry.from_settings(settings)
        version = registry.active_version()
        if version is None:
            log.info("no active model: pictures with several faces are skipped")
            return None
        classifier = Classifier.load(registry.version_dir(version), int8=settings.registry.int8)
    except CatalogError as exc:
        log.warning("pictures with several faces are skipped: the active model is unusable (%s)", exc)
        return None
    log.info(
        "of a picture with several faces, the one face model %s names as the folder's character is kept",
        version,
    )
    return GroupFacePicker(classifier, finder, version)
