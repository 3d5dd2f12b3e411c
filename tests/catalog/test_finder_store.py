"""The installed face finder in the object store (`catalog.finder_store`), on both backends: what one
machine installs, another finds through the store alone (a bucket: copied into its own cache,
checked against the pointer's digests); old versions go, the previous one stays; bad pointers and
bad copies are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.finder_store import finder_folder, install_finder, installed_finder
from catalog.object_backends import open_objects
from catalog.objects import StoreError
from catalog.settings import Settings
from catalog.settings_sections import StoreSettings


def finder_files(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "face.onnx").write_bytes(b"graph " + tag.encode() * 1000)
    (folder / "face.json").write_text(f'{{"tag": "{tag}"}}')
    (folder / ".train-faces-leftover").mkdir()  # a trainer's temporary folder is not installed
    return folder


@pytest.fixture
def two_machines(
    tmp_path: Path, settings: Settings, store_settings: StoreSettings
) -> tuple[Settings, Settings]:
    """A trainer and a bot with their own data directories, sharing only the store (a bucket), or
    one machine (the folder store lives in the data directory)."""
    trainer = settings.model_copy(update={"store": store_settings})
    if not store_settings.url:
        return trainer, trainer
    return trainer, trainer.model_copy(update={"data_dir": tmp_path / "bot-data"})


def test_what_one_machine_installs_the_other_finds(
    tmp_path: Path, two_machines: tuple[Settings, Settings]
) -> None:
    trainer, bot = two_machines
    assert finder_folder(bot) is None
    installed = install_finder(trainer, finder_files(tmp_path / "a", "a"))
    assert sorted(installed.files) == ["face.json", "face.onnx"]
    folder = finder_folder(bot)
    assert folder is not None and folder.name == installed.version
    assert (folder / "face.onnx").read_bytes() == (tmp_path / "a" / "face.onnx").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["face.json", "face.onnx"]
    if trainer.store.url:  # the bot's copy lives in its cache; its data directory holds nothing else
        assert folder.is_relative_to(bot.cache_dir)
        assert not (bot.data_dir / "faces").exists()
        assert finder_folder(bot) == folder  # a second look uses the copy
    again = install_finder(trainer, tmp_path / "a")
    assert again == installed, "installing the same files again changes nothing"


def test_a_new_install_keeps_the_previous_finder_and_drops_older_ones(
    tmp_path: Path, two_machines: tuple[Settings, Settings]
) -> None:
    trainer, bot = two_machines
    first = install_finder(trainer, finder_files(tmp_path / "a", "a"))
    second = install_finder(trainer, finder_files(tmp_path / "b", "b"))
    assert installed_finder(bot) == second and second.previous == first.version
    assert (finder_folder(bot) / "face.json").read_text() == '{"tag": "b"}'
    third = install_finder(trainer, finder_files(tmp_path / "c", "c"))
    keys = {info.key.split("/")[0] for info in open_objects(trainer, "faces").list()}
    assert keys == {"ACTIVE", second.version, third.version}


def test_the_cascade_or_an_explicit_folder_leave_the_store_alone(tmp_path: Path, settings: Settings) -> None:
    install_finder(settings, finder_files(tmp_path / "a", "a"))
    cascade = settings.model_copy(update={"faces": settings.faces.model_copy(update={"finder": "cascade"})})
    assert finder_folder(cascade) is None
    chosen = settings.model_copy(
        update={"faces": settings.faces.model_copy(update={"trained_dir": tmp_path})}
    )
    assert finder_folder(chosen) == tmp_path


def test_a_broken_pointer_is_one_clear_error(settings: Settings) -> None:
    open_objects(settings, "faces").put("ACTIVE", b"{not json")
    with pytest.raises(StoreError, match="is not a face finder pointer"):
        finder_folder(settings)


def test_nothing_to_install_is_one_clear_error(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="has no files to install"):
        install_finder(settings, tmp_path / "empty")


@pytest.mark.s3
def test_a_copy_that_does_not_match_the_pointer_is_refused(
    tmp_path: Path, settings: Settings, s3_store: StoreSettings
) -> None:
    trainer = settings.model_copy(update={"store": s3_store})
    bot = trainer.model_copy(update={"data_dir": tmp_path / "bot-data"})
    installed = install_finder(trainer, finder_files(tmp_path / "a", "a"))
    open_objects(trainer, "faces").put(f"{installed.version}/face.onnx", b"tampered")
    with pytest.raises(StoreError, match="does not match the sha256"):
        finder_folder(bot)
    cache = bot.cache_dir / "faces"
    assert not (cache / installed.version).exists() and not list(cache.iterdir()), "no partial copy is left"
