"""Dataset assembly: resolved labels from the catalog, folders, class filtering and bad input."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine

from catalog.db import session_scope
from catalog.schema import Character, Face, Image, ImageStatus, Label, LabelOrigin, Provenance
from catalog.settings import Settings
from catalog.store import ImageStore
from tests.trainer.conftest import draw_folder, tiny_settings
from trainer import TrainingError
from trainer.catalog_source import from_catalog
from trainer.dataset import PixelLoader, check_trainable, filter_classes
from trainer.folder_source import from_folder


def _jpeg(colour: tuple[int, int, int], size: int = 48) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_catalog_labels_resolve_by_trust_and_faces_stand_for_their_image(
    sqlite_engine: Engine, settings: Settings
) -> None:
    store = ImageStore.from_settings(settings)
    with session_scope(sqlite_engine) as s:
        alice, bob, gone = (
            Character(name="Alice", slug="alice"),
            Character(name="Bob", slug="bob"),
            Character(name="Gone", slug="gone", active=False),
        )
        s.add_all([alice, bob, gone])
        s.flush()

        def image(n: int, *, faces: int = 0, status: ImageStatus = ImageStatus.accepted, post: str | None = None,
                  duplicate_of: int | None = None, review: bool = False) -> tuple[Image, list[Face]]:  # fmt: skip
            sha = store.put(_jpeg((n * 20 % 255, 40, 90)))
            row = Image(sha256=sha, status=status, stored=status != ImageStatus.duplicate, has_face=faces > 0,
                        phash=f"{n * 0x1111111111:016x}"[-16:], duplicate_of_id=duplicate_of)  # fmt: skip
            s.add(row)
            s.flush()
            s.add(Provenance(image_id=row.id, post_id=post, url=f"https://i.redd.it/{n}.jpg"))
            made = []
            for k in range(faces):
                crop = store.put(_jpeg((n * 20 % 255, 40 + k * 50, 200)))
                face = Face(
                    image_id=row.id, index=k, x=0, y=0, w=10, h=10, crop_sha256=crop, needs_review=review
                )
                s.add(face)
                made.append(face)
            s.flush()
            return row, made

        def label(target: Image | Face, character: Character | None, origin: LabelOrigin) -> None:
            key = {"face_id": target.id} if isinstance(target, Face) else {"image_id": target.id}
            s.add(Label(character_id=character.id if character else None, origin=origin, weight=1.0, **key))

        whole, _ = image(1, post="p1")  # no face: the whole image, labelled by its subreddit
        label(whole, alice, LabelOrigin.subreddit)
        corrected, (face,) = image(2, faces=1, post="p1")  # a moderator overrides the subreddit
        label(corrected, alice, LabelOrigin.subreddit)
        label(face, bob, LabelOrigin.moderator)
        voted, _ = image(3, post="p2")  # community quorum beats a title mention
        label(voted, alice, LabelOrigin.title_mention)
        label(voted, bob, LabelOrigin.vote)
        not_char, _ = image(4)
        label(not_char, alice, LabelOrigin.subreddit)
        label(not_char, None, LabelOrigin.moderator)
        group, faces = image(5, faces=2, review=True)  # two faces: only the one with its own label counts
        label(group, alice, LabelOrigin.subreddit)
        label(faces[1], bob, LabelOrigin.vote)
        inactive, _ = image(6)
        label(inactive, gone, LabelOrigin.moderator)
        pending, _ = image(7, status=ImageStatus.review)
        label(pending, alice, LabelOrigin.subreddit)
        _repost, _ = image(8, status=ImageStatus.duplicate, duplicate_of=voted.id, post="p9")
        ids = {
            "whole": whole.id,
            "face": face.crop_sha256,
            "voted": voted.id,
            "group_face": faces[1].crop_sha256,
        }

    assembled = from_catalog(sqlite_engine, settings)
    by_key = {item.key: item for item in assembled.items}
    with session_scope(sqlite_engine) as s:
        sha = {name: s.get(Image, i).sha256 for name, i in ids.items() if isinstance(i, int)}
    assert by_key[sha["whole"]].label == "Alice"
    assert by_key[ids["face"]].label == "Bob"  # the moderator's label, on the face crop
    assert by_key[ids["face"]].origin == "moderator"
    assert by_key[sha["voted"]].label == "Bob"
    assert by_key[ids["group_face"]].label == "Bob"
    assert len(assembled.items) == 4
    assert assembled.skipped == {"not_a_character": 1, "face_needs_review": 1, "inactive_character": 1,
                                 "in_review": 1}  # fmt: skip
    # One post, two images: linked. A repost in another post links that post to the original.
    assert "post:p1" in by_key[sha["whole"]].links & by_key[ids["face"]].links
    assert {"post:p2", "post:p9"} <= by_key[sha["voted"]].links
    loader = PixelLoader(settings, 32)
    assert loader(by_key[ids["face"]]).shape == (32, 32, 3)


def test_small_classes_are_left_out_with_a_warning_and_big_ones_capped(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    names = draw_folder(tmp_path / "set", {0: 7, 1: 7, 2: 2}, size=64)
    (tmp_path / "set" / "empty_one").mkdir()
    (tmp_path / "set" / "all_rejected").mkdir()
    (tmp_path / "set" / "all_rejected" / "page.png").write_bytes(b"<html><body>not a picture</body></html>")
    assembled = from_folder(tmp_path / "set", settings, 32, detect_faces=False)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        filter_classes(assembled, min_images=3, max_images=5, seed=0)
    assert assembled.labels == sorted(names[:2])
    assert assembled.dropped_classes == {names[2]: 2, "all_rejected": 0, "empty_one": 0}
    assert assembled.capped_classes == {names[0]: 7, names[1]: 7}
    assert assembled.counts() == dict.fromkeys(sorted(names[:2]), 5)
    assert f"class {names[2]!r} left out: 2 images" in caplog.text
    assert "class 'all_rejected' left out: 0 images" in caplog.text
    assert "'empty_one': the folder has no image files" in caplog.text


def test_hostile_files_are_skipped_with_their_reason_counted(tmp_path: Path, settings: Settings) -> None:
    names = draw_folder(tmp_path / "set", {0: 3, 1: 3}, size=64)
    (tmp_path / "set" / names[0] / "fake.jpg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "set" / names[1] / "cut.jpg").write_bytes(
        (tmp_path / "set" / names[1] / "000.jpg").read_bytes()[:300]
    )
    assembled = from_folder(tmp_path / "set", settings, 32, detect_faces=False)
    assert len(assembled.items) == 6
    assert sum(assembled.skipped.values()) == 2
    assert all(reason.startswith("rejected:") for reason in assembled.skipped)


def test_from_folder_crops_detected_faces(tmp_path: Path, settings: Settings) -> None:
    draw_folder(tmp_path / "set", {0: 4}, size=160)
    assembled = from_folder(tmp_path / "set", settings, 48)
    crops = [item for item in assembled.items if item.key != item.image_sha256]
    assert crops, "the anime face cascade found no face in any synthetic portrait"
    assert all(item.pixels.shape == (48, 48, 3) and item.pixels.dtype == np.uint8 for item in assembled.items)
    # Cut by the bot's finder at the input size itself (not cut at the stored-crop size, then resized).
    from catalog.finder_store import finder_folder
    from media.decode import decode_image
    from media.faces import face_finder

    finder = face_finder(settings, finder_folder(settings))
    expected = set()
    for path in sorted((tmp_path / "set").rglob("*.jpg")):
        rgb = decode_image(path.read_bytes(), settings.images).rgb
        expected |= {finder.crop(rgb, box, 48).tobytes() for box in finder.detect(rgb)}
    assert {item.pixels.tobytes() for item in crops} <= expected


@pytest.mark.parametrize(
    ("counts", "message"),
    [({}, "no labelled images to train on"), ({0: 6}, "only one class"), ({0: 6, 1: 2}, "only one class")],
)
def test_empty_or_single_class_dataset_is_refused(
    tmp_path: Path, settings: Settings, counts: dict[int, int], message: str
) -> None:
    root = tmp_path / "set"
    root.mkdir()
    if counts:
        draw_folder(root, counts, size=64)
    else:
        (root / "nobody").mkdir()
    assembled = from_folder(root, settings, 32, detect_faces=False)
    filter_classes(assembled, min_images=4, max_images=100, seed=0)
    with pytest.raises(TrainingError, match=message):
        check_trainable(assembled, 4)


def test_train_run_refuses_bad_datasets_and_leaves_the_registry_alone(
    tmp_path: Path, cascade_path: Path
) -> None:
    from trainer.run import train_run

    settings = tiny_settings(tmp_path / "data", cascade_path)
    root = tmp_path / "one_class"
    draw_folder(root, {0: 6}, size=64)
    with pytest.raises(TrainingError, match="only one class"):
        train_run(settings, None, from_folder=root, progress=False)
    with pytest.raises(TrainingError, match="not a folder"):
        train_run(settings, None, from_folder=tmp_path / "missing", progress=False)
    with pytest.raises(TrainingError, match="no catalog to train from"):
        train_run(settings, None, progress=False)
    with pytest.raises(TrainingError, match="backbone='vgg11': Input should be 'efficientnet_lite0'"):
        train_run(settings, None, from_folder=root, backbone="vgg11", progress=False)
    assert not (settings.registry_dir / "versions").exists() or not any(
        (settings.registry_dir / "versions").iterdir()
    )


def test_synthetic_near_duplicates_stay_beside_their_originals(tmp_path: Path, settings: Settings) -> None:
    """Reposts that were re-encoded, resized, watermarked or recoloured are grouped with their
    original, so a split can never put them on two sides."""
    import hashlib

    from sandbox.characters import generate_dataset
    from trainer.splits import split

    manifest = generate_dataset(
        tmp_path / "set", characters=3, images=10, seed=2, scenes=2, near_duplicates=10
    )
    assembled = from_folder(tmp_path / "set", settings, 32)
    assert assembled.labels == sorted(spec.slug for spec in manifest.characters)  # scenes/ is no character
    index = {item.image_sha256: i for i, item in enumerate(assembled.items)}

    def position(relative: str) -> int:
        return index[hashlib.sha256((tmp_path / "set" / relative).read_bytes()).hexdigest()]

    sides = split(assembled.items, val_fraction=0.2, test_fraction=0.2, seed=1).side_of()
    checked = 0
    for entry in manifest.near_duplicates:
        if entry["kind"] != "crop":  # crops are caught when either hash is close: most, not all
            assert sides[position(entry["original"])] == sides[position(entry["path"])], entry
            checked += 1
    assert checked == 8


def test_a_file_in_two_characters_folders_is_left_out_and_a_copy_counted_once(
    tmp_path: Path, settings: Settings
) -> None:
    names = draw_folder(tmp_path / "set", {0: 3, 1: 3}, size=64)
    first, second = (tmp_path / "set" / name for name in names)
    (second / "stolen.jpg").write_bytes((first / "000.jpg").read_bytes())
    (first / "again.jpg").write_bytes((first / "001.jpg").read_bytes())
    assembled = from_folder(tmp_path / "set", settings, 32, detect_faces=False)
    assert assembled.skipped == {"conflicting_labels": 2, "exact_duplicate": 1}
    assert assembled.counts() == {names[0]: 2, names[1]: 3}
    assert any("more than one character's folder" in w for w in assembled.warnings)
