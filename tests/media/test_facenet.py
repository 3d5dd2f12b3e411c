"""The trained face finder's runtime (media.facenet) and how `face_finder` chooses a finder.

The detector here is a real ONNX graph run by onnxruntime that answers fixed detections (in the
coordinates of the resized input it receives), so that the scaling back to the picture, the score
threshold, non-maximum suppression and the card checks are tested without training anything;
`tests/trainer/test_face_train.py` trains and exports a real one, and `tests/catalog/test_finder_store.py`
installs one in the object store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from catalog.settings import FaceSettings, Settings
from media.boxes import Box
from media.errors import MediaError
from media.facenet import FACE_CARD, FACE_ONNX, NetFaceFinder

onnx = pytest.importorskip(
    "onnx", reason="building a stand-in detector graph needs the onnx package (train extra)"
)
from tests.fixtures.finders import stand_in_graph, write_finder


def test_boxes_come_back_in_the_pictures_pixels_thresholded_and_thinned(tmp_path: Path) -> None:
    # A 640x480 picture is resized to 320x240 (padded to 320x256): half its size.
    folder = write_finder(
        tmp_path / "faces",
        [
            [200, 20, 260, 80, 0.9],  # right face
            [10, 20, 110, 120, 0.8],  # left face
            [14, 22, 112, 118, 0.7],  # the left face again, weaker: suppressed
            [150, 150, 180, 180, 0.2],  # under the threshold
        ],
    )
    finder = NetFaceFinder(folder, FaceSettings())
    rgb = np.zeros((480, 640, 3), np.uint8)
    assert finder.detect(rgb) == [Box(20, 40, 200, 200), Box(400, 40, 120, 120)]
    scored = finder.detect_scored(rgb, threshold=0.1)
    assert [round(s, 2) for _, s in scored] == [0.8, 0.2, 0.9]


def test_boxes_are_kept_inside_the_picture(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[-30, -10, 100, 60, 0.9], [300, 200, 400, 300, 0.9]])
    one_look = FaceSettings(net_second_side=0)  # the cut face is small: it would look again
    boxes = NetFaceFinder(folder, one_look).detect(np.zeros((240, 320, 3), np.uint8))
    assert boxes == [Box(0, 0, 100, 60), Box(300, 200, 20, 40)]


def test_a_small_face_makes_the_finder_look_again_at_the_larger_side(tmp_path: Path) -> None:
    # The stand-in answers the same input pixels at both looks: at 320 px a 640 px picture is
    # halved, at 640 px it is not, so each detection lands on two different boxes of the picture.
    folder = write_finder(tmp_path / "faces", [[10, 10, 30, 30, 0.9], [20, 20, 60, 60, 0.6]])
    rgb = np.zeros((640, 640, 3), np.uint8)
    first = [Box(20, 20, 40, 40), Box(40, 40, 80, 80)]  # both under 15% of the long side (96 px)
    assert NetFaceFinder(folder, FaceSettings(net_second_side=0)).detect(rgb) == first
    finder = NetFaceFinder(folder, FaceSettings())
    assert finder.detect_scored(rgb, second_look=False) == [
        (first[0], pytest.approx(0.9)),
        (first[1], pytest.approx(0.6)),
    ]
    # The second look's (20, 20, 40, 40) at 0.6 is the first look's face at 0.9: kept once, at 0.9.
    scored = finder.detect_scored(rgb)
    assert [box for box, _ in scored] == [Box(10, 10, 20, 20), Box(20, 20, 40, 40), Box(40, 40, 80, 80)]
    assert [round(score, 2) for _, score in scored] == [0.9, 0.9, 0.6]


def test_faces_of_at_least_the_second_look_share_are_looked_at_once(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.9]])
    rgb = np.zeros((640, 640, 3), np.uint8)  # a 100 px face: over 15% of 640
    assert NetFaceFinder(folder, FaceSettings()).detect(rgb) == [Box(20, 20, 100, 100)]
    # with a higher bar the same face is small: the second look adds the half-size box
    assert NetFaceFinder(folder, FaceSettings(net_second_below=0.2)).detect(rgb) == [
        Box(10, 10, 50, 50),
        Box(20, 20, 100, 100),
    ]


def test_an_unsure_detection_beside_the_faces_makes_the_finder_look_again(tmp_path: Path) -> None:
    # A 100 px face (over 15% of 640) and, elsewhere, a detection at 0.47: under the threshold
    # (0.5), over 90% of it. At the second look (scale 1) the face comes back as a second box.
    rgb = np.zeros((640, 640, 3), np.uint8)
    face, doubt = [10, 10, 60, 60, 0.9], [200, 200, 230, 230, 0.47]
    folder = write_finder(tmp_path / "doubt", [face, doubt])
    assert NetFaceFinder(folder, FaceSettings()).detect(rgb) == [Box(10, 10, 50, 50), Box(20, 20, 100, 100)]
    assert NetFaceFinder(folder, FaceSettings(net_second_unsure=1.0)).detect(rgb) == [Box(20, 20, 100, 100)]
    # less sure than 90% of the threshold, or on the face already kept: no doubt, one look
    folder = write_finder(tmp_path / "faint", [face, [200, 200, 230, 230, 0.4]])
    assert NetFaceFinder(folder, FaceSettings()).detect(rgb) == [Box(20, 20, 100, 100)]
    folder = write_finder(tmp_path / "same", [face, [12, 12, 58, 58, 0.47]])
    assert NetFaceFinder(folder, FaceSettings()).detect(rgb) == [Box(20, 20, 100, 100)]


def test_a_settings_threshold_overrides_the_cards(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.3]], threshold=0.5)
    rgb = np.zeros((320, 320, 3), np.uint8)
    assert NetFaceFinder(folder, FaceSettings()).detect(rgb) == []
    assert NetFaceFinder(folder, FaceSettings(net_score_threshold=0.25)).detect(rgb) == [Box(10, 10, 50, 50)]


def test_crop_frames_a_face_like_the_cascades_crop(tmp_path: Path, cascade_path: Path) -> None:
    from media.faces import FaceDetector

    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.9]])
    rgb = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = Box(100, 80, 60, 60)
    net = NetFaceFinder(folder, FaceSettings())
    cascade = FaceDetector(cascade_path, FaceSettings())
    assert np.array_equal(net.crop(rgb, box, 96), cascade.crop(rgb, box, 96))
    assert net.crop(rgb, box).shape == (FaceSettings().crop_size, FaceSettings().crop_size, 3)


def test_a_graph_that_does_not_match_its_card_is_refused(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.9]])
    (folder / FACE_ONNX).write_bytes(stand_in_graph([[0, 0, 5, 5, 0.9]]))
    with pytest.raises(MediaError, match="not the .* its card names"):
        NetFaceFinder(folder, FaceSettings())


def test_a_broken_card_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.9]])
    (folder / FACE_CARD).write_text(json.dumps({"side": 320}))
    with pytest.raises(MediaError, match="is not valid"):
        NetFaceFinder(folder, FaceSettings())


def test_face_finder_uses_a_trained_finder_when_there_is_one(settings: Settings, tmp_path: Path) -> None:
    from media.faces import FaceDetector, face_finder

    assert isinstance(face_finder(settings, None), FaceDetector)
    assert isinstance(face_finder(settings, tmp_path / "empty"), FaceDetector)
    folder = write_finder(tmp_path / "faces", [[10, 10, 60, 60, 0.9]])
    assert isinstance(face_finder(settings, folder), NetFaceFinder)
    cascade_only = settings.model_copy(
        update={"faces": settings.faces.model_copy(update={"finder": "cascade"})}
    )
    assert isinstance(face_finder(cascade_only, folder), FaceDetector)


def test_face_finder_asked_for_a_trained_finder_that_is_missing_says_how_to_get_one(
    settings: Settings,
) -> None:
    from media.faces import face_finder

    wanted = settings.model_copy(update={"faces": settings.faces.model_copy(update={"finder": "trained"})})
    with pytest.raises(MediaError, match="no face finder is installed; run `namae train-faces`"):
        face_finder(wanted, None)


def test_a_picture_one_face_fills_is_found_in_a_larger_canvas(tmp_path: Path) -> None:
    # A 320x100 picture: at its own look the stand-in's box lands below the picture (no face); in
    # a canvas 2.5 times its side (shrunk to 128x40 in the middle of 320) the same box is 96 px
    # wide, at least half of the picture's 128, centred on it.
    one_look = FaceSettings(net_second_side=0)
    rgb = np.zeros((100, 320, 3), np.uint8)
    filling = NetFaceFinder(write_finder(tmp_path / "fills", [[112, 112, 208, 208, 0.9]]), one_look)
    assert filling.detect(rgb) == [] and filling.fills(rgb)
    # a face too small for the picture, one off it, one under the threshold: no
    for name, row in (
        ("small", [150, 150, 170, 170, 0.9]),
        ("off", [0, 0, 96, 96, 0.9]),
        ("weak", [112, 112, 208, 208, 0.3]),
    ):
        assert not NetFaceFinder(write_finder(tmp_path / name, [row]), one_look).fills(rgb), name
