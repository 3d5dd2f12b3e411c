"""A picture one face fills, where the trained finder finds no face: answered as a face crop
handed over as it is (the whole picture, the face's bars), not from its regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catalog.settings import FaceSettings
from media.facenet import NetFaceFinder
from models.answer import answer_pixels
from models.classifier import Classifier
from models.registry import Registry
from tests.fixtures.finders import write_finder
from tests.models.tiny import stage_version

pytest.importorskip("onnx", reason="building a stand-in detector graph needs the onnx package (train extra)")


def test_a_picture_one_face_fills_is_answered_as_a_face_crop(tmp_path: Path, tiny_onnx: Path) -> None:
    _, folder = stage_version(Registry(tmp_path / "models", margin=0.01, keep_last=5), tiny_onnx, f1=0.5)
    model = Classifier.load(folder)
    rgb = np.random.default_rng(3).integers(0, 256, (100, 320, 3), dtype=np.uint8)
    one_look = FaceSettings(net_second_side=0)
    # the stand-in's box misses the 320x100 picture at its own look and fills it in the canvas
    filling = NetFaceFinder(write_finder(tmp_path / "fills", [[112, 112, 208, 208, 0.9]]), one_look)
    [as_crop] = answer_pixels(rgb, model=model, finder=None)
    [answer] = answer_pixels(rgb, model=model, finder=filling)
    assert answer.box is None
    assert answer.candidates == as_crop.candidates and answer.kind is as_crop.kind
    # the same picture where no face fills it: its regions answer, which differ
    elsewhere = NetFaceFinder(write_finder(tmp_path / "small", [[150, 150, 170, 170, 0.9]]), one_look)
    [regions] = answer_pixels(rgb, model=model, finder=elsewhere)
    assert regions.box is None and regions.candidates != as_crop.candidates
