"""The one answer path: per-face answers left to right, the whole picture and its regions when no
face is found, frames merged, the card's thresholds deciding "not sure" unless a threshold is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.settings import FaceSettings
from media.faces import FaceDetector
from models.answer import answer_pixels
from models.classifier import Classifier
from models.regions import picture_regions
from models.registry import Registry
from sandbox.characters.render import render_scene
from sandbox.characters.traits import make_characters
from tests.fixtures.model import TinyModel
from tests.models.tiny import LABELS, random_images, stage_version, torch_probabilities


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models", margin=0.01, keep_last=5)


@pytest.fixture(scope="module")
def detector(cascade_path: Path) -> FaceDetector:
    return FaceDetector(cascade_path, FaceSettings())


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """Three characters side by side; the cascade finds all three faces with this seed."""
    image, _ = render_scene(make_characters(3, seed=1), np.random.default_rng(0), size=(384, 224))
    return np.asarray(image)


def test_unknown_below_threshold(registry: Registry, tiny_onnx: Path) -> None:
    # A huge temperature flattens the distribution: every label near 1/4.
    _, flat = stage_version(registry, tiny_onnx, f1=0.5, temperature=1000.0, thresholds=0.5)
    image = random_images(1, seed=5)[0]
    classifier = Classifier.load(flat)
    [answer] = answer_pixels(image, model=classifier, finder=None)
    assert answer.box is None
    assert answer.candidates[0].probability == pytest.approx(0.25, abs=0.01)
    assert answer.unknown
    [answer] = [a.with_threshold(0.2) for a in answer_pixels(image, model=classifier, finder=None)]
    assert not answer.unknown
    # A per-class threshold applies to the top label; others fall back to the global one.
    top = answer.candidates[0].label
    _, per_class = stage_version(
        registry, tiny_onnx, f1=0.5, temperature=1000.0, thresholds={"global": 0.9, "per_class": {top: 0.1}}
    )
    [answer] = answer_pixels(image, model=Classifier.load(per_class), finder=None)
    assert answer.candidates[0].label == top and not answer.unknown


def test_one_answer_per_face_left_to_right(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector, scene: np.ndarray
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder)
    answers = answer_pixels(scene, model=classifier, finder=detector, top_k=3)
    boxes = detector.detect(scene)
    assert len(boxes) == 3
    assert [a.box for a in answers] == boxes
    assert [a.box.x for a in answers] == sorted(a.box.x for a in answers)
    # Faces are cut at the model's input size, not the finder's stored-crop size: no upscaling.
    assert classifier.image_size != detector.settings.crop_size
    crops = [detector.crop(scene, box, classifier.image_size) for box in boxes]
    expected = torch_probabilities(crops, temperature=1.0)
    for answer, row, crop in zip(answers, expected, crops, strict=True):
        assert answer.crop is not None and np.array_equal(answer.crop, crop)  # what the model saw
        assert answer.crop.shape == (classifier.image_size, classifier.image_size, 3)
        assert len(answer.candidates) == 3
        assert sum(c.probability for c in answer.candidates) <= 1.0 + 1e-9
        assert answer.candidates[0].probability == pytest.approx(row.max(), abs=1e-5)
        assert answer.embedding is not None and answer.embedding.shape == (16,)
        assert float(np.linalg.norm(answer.embedding)) == pytest.approx(1.0, abs=1e-5)


def test_no_face_gives_one_whole_image_answer(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder)
    plain = np.full((120, 200, 3), 230, dtype=np.uint8)
    [answer] = answer_pixels(plain, model=classifier, finder=detector)
    assert answer.box is None and answer.crop is None
    # The model's probabilities averaged over the whole picture and the grid of squares.
    regions = picture_regions(plain)
    assert len(regions) == 10 and regions[0] is plain
    assert {r.shape for r in regions[1:]} == {(84, 84, 3)}  # 0.7 of the short side
    assert answer.candidates[0].probability == pytest.approx(
        torch_probabilities(regions, 1.0).mean(0).max(), abs=1e-5
    )


def test_frames_are_merged_per_face_and_for_the_whole_image(
    registry: Registry, tiny_onnx: Path, detector: FaceDetector, scene: np.ndarray
) -> None:
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder)
    single = answer_pixels(scene, model=classifier, finder=detector)
    blank = np.full_like(scene, 200)
    # A frame without faces contributes nothing to the faces found in another frame.
    merged = answer_pixels(blank, [scene], model=classifier, finder=detector)
    assert [a.box for a in merged] == [a.box for a in single]
    assert [a.candidates for a in merged] == [a.candidates for a in single]
    # No face in any frame: the probabilities of every frame's regions averaged.
    a, b = random_images(2, seed=9)
    [answer] = answer_pixels(a, [b], model=classifier, finder=detector, top_k=4)
    expected = torch_probabilities([*picture_regions(a), *picture_regions(b)], 1.0).mean(0)
    for candidate in answer.candidates:
        assert candidate.probability == pytest.approx(expected[LABELS.index(candidate.label)], abs=1e-5)


def test_a_character_off_centre_is_named_from_the_regions_when_no_face_is_found(
    tiny_model: TinyModel, cascade_path: Path
) -> None:
    """A portrait in the top-left corner of a wide grey picture, with a finder that misses its face
    (faces under 200 px are not looked for): the whole picture alone, padded square and shrunk to
    the model's input, is mostly wrong; the regions, one of which frames the portrait, name it."""
    # The float graph: this counts what the regions add, exactly; the int8 graph's own agreement is
    # tests/trainer/test_quantize.py's (here it names 15 of the 16, one borderline region flipped).
    classifier = Classifier.load(
        Registry(tiny_model.registry_root).version_dir(tiny_model.version), int8=False
    )
    blind = FaceDetector(cascade_path, FaceSettings(min_size=200))
    whole_right = regions_right = 0
    for label in tiny_model.labels:
        for path in sorted((tiny_model.dataset_root / label).glob("*.jpg"))[2:6]:
            picture = np.full((220, 660, 3), 128, dtype=np.uint8)
            with Image.open(path) as portrait:
                picture[:150, :150] = np.asarray(portrait.convert("RGB").resize((150, 150)))
            assert blind.detect(picture) == []
            [whole] = answer_pixels(picture, model=classifier, finder=None)  # the picture as it is
            [answer] = answer_pixels(picture, model=classifier, finder=blind)
            assert answer.box is None and answer.crop is None
            whole_right += whole.candidates[0].label == label
            regions_right += answer.candidates[0].label == label
    # 16 with lite0's last features alone; with its middle features (the default) two borderline
    # regions' order flips (0.54 against 0.27 the other way). On this tiny model every one of these
    # answers is "not a character" (the no-face bar), with or without them.
    assert regions_right >= 14
    assert whole_right <= 8


def test_a_face_near_a_bar_is_answered_from_both_looks(tiny_model: TinyModel, cascade_path: Path) -> None:
    """The tiny model's card has second-look margins (the trainer's default): with margins that
    take in every face, a face crop and a picture's regions are decided on their looks and their
    mirror images averaged; with none, on the first look alone."""
    from models.openset import Looks, both_looks
    from models.preprocess import mirrored

    classifier = Classifier.load(Registry(tiny_model.registry_root).version_dir(tiny_model.version))
    assert classifier.world is not None and classifier.card.open_set is not None
    assert classifier.card.open_set.second_look is not None
    with Image.open(min((tiny_model.dataset_root / tiny_model.labels[0]).glob("*.jpg"))) as face:
        crop = np.asarray(face.convert("RGB"))
    picture = np.full((220, 660, 3), 128, dtype=np.uint8)
    picture[:150, :150] = np.asarray(Image.fromarray(crop).resize((150, 150)))
    blind = FaceDetector(cascade_path, FaceSettings(min_size=200))
    regions = picture_regions(picture)
    for pictures, finder, rgb in (([crop], None, crop), (regions, blind, picture)):
        first_p, first_e, first_f = classifier.infer(pictures)
        mirror_p, mirror_e, mirror_f = classifier.infer(mirrored(pictures))
        mean = Looks(first_p.mean(0), first_e.mean(0), first_f.mean(0))
        both = both_looks(mean, Looks(mirror_p.mean(0), mirror_e.mean(0), mirror_f.mean(0))).vectors
        first = first_e.mean(0) / np.linalg.norm(first_e.mean(0))
        assert float(both @ first) < 0.9999  # the mirror image is another look
        fitted = classifier.card.open_set
        classifier.world.thresholds = fitted.model_copy(update={"second_look": (np.inf, np.inf)})
        [twice] = answer_pixels(rgb, model=classifier, finder=finder)
        classifier.world.thresholds = fitted.model_copy(update={"second_look": (0.0, 0.0)})
        [once] = answer_pixels(rgb, model=classifier, finder=finder)
        assert twice.embedding is not None and once.embedding is not None
        assert twice.embedding == pytest.approx(both, abs=1e-5)
        assert once.embedding == pytest.approx(first, abs=1e-5)
