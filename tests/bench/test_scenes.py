"""bench.scenes and bench.scene_pictures: pasted scenes and collages are laid out as they say,
each picture drawn about equally often, answers are judged per face, and a whole run through the
real answer path names the tiny model's characters in collages."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.scene_pictures import SEVERAL_CHARACTERS, Scene, Truth, collages, pasted_scenes, without_listed
from bench.scenes import figures, outcomes
from catalog.settings import Settings
from media.boxes import Box
from media.decode import DecodeLimits
from media.faces import FaceDetector
from models.answer import FaceAnswer, Kind
from models.classifier import Candidate, Classifier
from models.registry import Registry
from tests.fixtures.bot import characters, portrait
from tests.fixtures.model import TinyModel
from trainer.face_paste import pasted_scene

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


def _solid_folders(root: Path, size: int) -> dict[str, list[Path]]:
    out = {}
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        path = root / name / "0.png"
        cv2.imwrite(str(path), np.full((size, size, 3), colour[::-1], np.uint8))
        out[name] = [path]
    return out


def test_a_pasted_scene_shows_each_face_once_at_its_box_clear_of_the_others() -> None:
    faces = [np.full((128, 128, 3), colour, np.uint8) for colour in COLOURS.values()]
    for seed in range(20):
        rgb, placed = pasted_scene(np.random.default_rng(seed), faces, [], [])
        height, width = rgb.shape[:2]
        assert 800 <= max(height, width) <= 1600
        assert len({index for index, _, _ in placed}) == len(placed) >= 2
        for index, (x, y, w, h), covered in placed:
            assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
            assert 0.06 * max(height, width) - 1 <= max(w, h) <= 0.35 * max(height, width) + 1
            if not covered:  # the face's own colour at its centre, untouched by any colour change
                centre = rgb[int(y + h / 2), int(x + w / 2)].astype(int)
                assert np.abs(centre - np.array(list(COLOURS.values())[index])).max() <= 2
        boxes = [Box(round(x), round(y), round(w), round(h)) for _, (x, y, w, h), _ in placed]
        assert all(a.iou(b) < 0.05 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_pasted_scenes_name_different_characters_and_tag_each_face(tmp_path: Path) -> None:
    scenes = pasted_scenes(_solid_folders(tmp_path, 96), 12, seed=3, backgrounds=[])
    assert len(scenes) == 12
    for scene in scenes:
        names = [t.character for t in scene.faces]
        assert len(set(names)) == len(names) and set(names) <= set(COLOURS)
        assert not scene.panels
        for truth in scene.faces:
            assert {"small", "medium", "large"} & set(truth.tags)
            assert {"covered", "uncovered"} & set(truth.tags)
        assert cv2.imdecode(np.frombuffer(scene.jpeg, np.uint8), cv2.IMREAD_COLOR) is not None


def test_a_collage_puts_each_post_whole_in_its_panel(tmp_path: Path) -> None:
    scenes = collages(_solid_folders(tmp_path, 300), 10, seed=1)
    for scene in scenes:
        rgb = cv2.cvtColor(
            cv2.imdecode(np.frombuffer(scene.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
        )
        assert scene.panels and 2 <= len(scene.faces) <= 3  # three characters to draw from
        for truth in scene.faces:
            x, y, w, h = (int(v) for v in truth.box)
            assert w == h and 400 <= h <= 700  # square posts scaled to the row's height
            panel = rgb[y + 4 : y + h - 4, x + 4 : x + w - 4].reshape(-1, 3).astype(int)
            assert np.abs(np.median(panel, 0) - COLOURS[truth.character]).max() <= 3


def _answer(box: Box | None, label: str, kind: Kind = Kind.NAME, probability: float = 0.9) -> FaceAnswer:
    return FaceAnswer(box, (Candidate(label, probability),), kind, 0.5)


def test_pasted_faces_are_judged_by_the_answer_that_overlaps_them_most() -> None:
    scene = Scene(
        b"",
        [
            Truth("alice", (0, 0, 100, 100)),
            Truth("bob", (200, 0, 100, 100)),
            Truth("carol", (400, 0, 100, 100)),
            Truth("dave", (600, 0, 100, 100)),
        ],
    )
    answers = [
        _answer(Box(5, 5, 95, 95), "alice"),  # right
        _answer(Box(10, 0, 100, 100), "bob"),  # alice's face again, smaller overlap: an extra face named
        _answer(Box(205, 0, 100, 100), "carol"),  # wrong
        _answer(Box(400, 0, 100, 100), "carol", Kind.UNKNOWN),  # found, not named
        _answer(Box(900, 0, 50, 50), "dave", Kind.NOT_CHARACTER),  # an extra face, not named
    ]
    assert outcomes(answers, scene) == (["right", "wrong", "not_named", "missed"], 1)
    # the whole picture's answer (no face found) is no face
    assert outcomes([_answer(None, "alice")], scene) == (["missed"] * 4, 0)


def test_a_collage_panel_is_judged_by_its_most_confident_face() -> None:
    scene = Scene(b"", [Truth("alice", (0, 0, 300, 300)), Truth("bob", (308, 0, 300, 300))], panels=True)
    answers = [
        _answer(Box(20, 20, 60, 60), "bob", probability=0.6),
        _answer(Box(150, 150, 80, 80), "alice", probability=0.95),
        _answer(Box(270, 100, 40, 40), "bob", probability=0.99),  # centred in alice's panel
    ]
    assert outcomes(answers, scene) == (["wrong", "missed"], 0)
    answers[2] = _answer(Box(320, 100, 40, 40), "bob", probability=0.99)  # now in bob's
    assert outcomes(answers, scene) == (["right", "right"], 0)


def test_collages_of_the_tiny_models_characters_are_named_through_the_answer_path(
    tmp_path: Path, tiny_model: TinyModel, cascade_path: Path
) -> None:
    posts: dict[str, list[Path]] = {}
    for index, name in enumerate(spec.slug for spec in characters()):
        (tmp_path / name).mkdir()
        for seed in (101, 102):  # portraits the model never trained on
            path = tmp_path / name / f"{seed}.png"
            portrait(index, seed, 320).save(path)
            posts.setdefault(name, []).append(path)
    settings = Settings(faces={"cascade_path": cascade_path}, _env_file=None)
    model = Classifier.load(Registry(tiny_model.registry_root).version_dir(tiny_model.version))
    result = figures(
        model,
        FaceDetector(cascade_path, settings.faces),
        collages(posts, 6, seed=2),
        DecodeLimits(settings.images),
    )
    assert result["scenes"] == 6 and result["faces"] == sum(result["by"][k]["faces"] for k in result["by"])
    assert result["found"] >= 0.9
    # the tiny model (64 px, 3 epochs) names 69% of these faces right and none wrong
    assert result["named_right"] >= 0.5 and result["named_wrong"] <= 0.1
    assert result["named_right"] + result["named_wrong"] + result["not_named"] == pytest.approx(
        result["found"]
    )


def test_unreadable_pictures_are_skipped_not_drawn_forever(tmp_path: Path) -> None:
    folders = _solid_folders(tmp_path, 96)
    broken = tmp_path / "red" / "broken.png"
    broken.write_bytes(b"not a picture")
    folders["red"] = [broken]
    scenes = pasted_scenes(folders, 8, seed=4, backgrounds=[])
    assert len(scenes) == 8 and all("red" not in {t.character for t in s.faces} for s in scenes)
    only_broken = {"red": [broken], "green": [broken]}
    assert pasted_scenes(only_broken, 3, seed=4, backgrounds=[]) == []
    assert collages(only_broken, 3, seed=4) == []


def test_collages_show_every_post_about_equally_often_whatever_its_characters_share(
    tmp_path: Path,
) -> None:
    # six characters, one with a single post and five with four: drawing a character first showed
    # the single post as often as four of another's together
    shades: dict[tuple[int, int, int], str] = {}
    posts: dict[str, list[Path]] = {}
    for c in range(6):
        for p in range(1 if c == 0 else 4):
            colour = (40 * c + 20, 50 * p + 30, 200 - 30 * c)
            (tmp_path / f"c{c}").mkdir(exist_ok=True)
            path = tmp_path / f"c{c}" / f"{p}.png"
            cv2.imwrite(str(path), np.full((200, 200, 3), colour[::-1], np.uint8))
            posts.setdefault(f"c{c}", []).append(path)
            shades[colour] = path.name
    shown: dict[tuple[int, int, int], int] = dict.fromkeys(shades, 0)
    for scene in collages(posts, 42, seed=5):
        rgb = cv2.cvtColor(
            cv2.imdecode(np.frombuffer(scene.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
        )
        for truth in scene.faces:
            x, y, w, h = (int(v) for v in truth.box)
            median = np.median(rgb[y + 4 : y + h - 4, x + 4 : x + w - 4].reshape(-1, 3), 0)
            closest = min(shades, key=lambda s: float(np.abs(np.array(s) - median).max()))
            shown[closest] += 1
    counts = sorted(shown.values())
    assert sum(counts) >= 42 * 2
    assert counts[-1] - counts[0] <= 3, shown


def test_posts_listed_as_showing_several_characters_are_left_out_of_the_collages(tmp_path: Path) -> None:
    posts = _solid_folders(tmp_path, 96)
    extra = tmp_path / "red" / "sub" / "1.png"
    extra.parent.mkdir()
    extra.write_bytes(posts["red"][0].read_bytes())
    posts["red"].append(extra)
    assert without_listed(tmp_path, posts) == (posts, 0)  # no list: every post stays
    (tmp_path / SEVERAL_CHARACTERS).write_text(
        "# checked by eye\nred/sub/1.png  # red and someone else\n\ngreen/0.png\nblue/missing.png\n",
        encoding="utf-8",
    )
    kept, left_out = without_listed(tmp_path, posts)
    assert left_out == 2
    assert kept == {"red": [posts["red"][0]], "green": [], "blue": posts["blue"]}
