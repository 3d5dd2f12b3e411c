"""bench.rescue's two finders: without and with the second chance, the cascade's or a trained one's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.rescue import finders
from catalog.settings import Settings
from media.boxes import Box
from media.facenet import NetFaceFinder
from media.faces import FaceDetector

pytest.importorskip("onnx", reason="building a stand-in detector graph needs the onnx package (train extra)")
from tests.fixtures.finders import write_finder


def test_with_a_trained_finder_only_the_candidate_looks_under_its_threshold(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.2]], threshold=0.5)
    # one look: the stand-in's boxes at the finder's second look would land elsewhere
    today, second, said = finders(Settings(faces={"net_second_side": 0}, _env_file=None), folder, 0.1)
    assert isinstance(today, NetFaceFinder)
    rgb = np.zeros((320, 320, 3), np.uint8)
    assert today.detect(rgb) == second.detect(rgb) == []
    assert today.rescue(rgb) == []  # the product's trained finder gives no second chance
    assert second.rescue(rgb) == [Box(10, 10, 50, 50)]
    assert np.array_equal(second.crop(rgb, Box(10, 10, 50, 50), 32), today.crop(rgb, Box(10, 10, 50, 50), 32))
    assert "from 0.1 to 0.5" in said
    # a second chance at or over the finder's own threshold would only repeat `detect`
    assert finders(Settings(faces={"net_second_side": 0}, _env_file=None), folder, 0.6)[1].rescue(rgb) == []


def test_without_one_the_cascade_is_compared_with_its_weaker_boxes(
    cascade_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMAE_FACES__CASCADE_PATH", str(cascade_path))
    today, second, said = finders(Settings(_env_file=None), None, 0.3)
    assert isinstance(today, FaceDetector) and isinstance(second, FaceDetector)
    assert today.settings.rescue_neighbors is None
    assert second.settings.rescue_neighbors == Settings(_env_file=None).faces.rescue_neighbors
    assert "neighbours" in said
