"""The image store on both backends (a folder; a real S3 server): content addressing, the check
against the catalog and its repair, the read-through cache of a remote store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from catalog.db import session_scope
from catalog.folder_objects import FolderObjects
from catalog.objects import ObjectMissing
from catalog.schema import Image, ImageStatus
from catalog.settings import Settings
from catalog.settings_sections import StoreSettings
from catalog.store import ImageStore, sha256_of


@pytest.fixture
def store(settings: Settings, store_settings: StoreSettings) -> ImageStore:
    return ImageStore.from_settings(settings.model_copy(update={"store": store_settings}))


def test_same_bytes_are_stored_once_under_their_hash(store: ImageStore) -> None:
    first = store.put(b"abc")
    second = store.put(b"abc")
    assert first == second == sha256_of(b"abc")
    assert store.read(first) == b"abc"
    assert [info.key for info in store.objects.list()] == [f"{first[:2]}/{first[2:4]}/{first}"]
    assert store.names() == [first]
    assert store.has(first) and not store.has(sha256_of(b"other"))


def test_check_finds_orphans_and_missing_files_and_fix_repairs(
    store: ImageStore, sqlite_engine: Engine
) -> None:
    kept = store.put(b"kept")
    orphan = store.put(b"orphan")
    gone = sha256_of(b"gone")
    with session_scope(sqlite_engine) as session:
        session.add(Image(sha256=kept, status=ImageStatus.accepted, stored=True))
        session.add(Image(sha256=gone, status=ImageStatus.accepted, stored=True))

    report = store.check(sqlite_engine)
    assert report.orphans == [orphan] and report.missing == [gone] and not report.clean
    fixed = store.check(sqlite_engine, fix=True)
    assert fixed.removed == 1
    assert store.check(sqlite_engine).clean
    assert store.has(kept) and not store.has(orphan)
    with session_scope(sqlite_engine) as session:
        assert session.query(Image).filter_by(sha256=gone).one().stored is False


def test_fix_removes_a_stray_object_whose_name_is_no_hash(store: ImageStore, sqlite_engine: Engine) -> None:
    store.objects.put("ab/cd/notes.txt", b"someone left this here")
    assert store.check(sqlite_engine).orphans == ["notes.txt"]
    assert store.check(sqlite_engine, fix=True).removed == 1
    assert store.check(sqlite_engine).clean


def test_verify_finds_bytes_that_do_not_match_their_name(store: ImageStore, sqlite_engine: Engine) -> None:
    sha = store.put(b"original")
    with session_scope(sqlite_engine) as session:
        session.add(Image(sha256=sha, status=ImageStatus.accepted, stored=True))
    store.objects.put(f"{sha[:2]}/{sha[2:4]}/{sha}", b"tampered")  # bit rot, or a hand edit
    assert store.check(sqlite_engine).clean
    assert store.check(sqlite_engine, verify=True).corrupt == [sha]


def test_deleted_images_are_gone_from_store_and_cache(store: ImageStore) -> None:
    sha = store.put(b"picture")
    assert store.read(sha) == b"picture"  # fills the cache of a remote store
    store.delete(sha)
    assert not store.has(sha)
    with pytest.raises(ObjectMissing):
        store.read(sha)


@pytest.mark.s3
def test_a_remote_store_reads_through_a_local_cache(settings: Settings, s3_store: StoreSettings) -> None:
    remote = settings.model_copy(update={"store": s3_store})
    writer = ImageStore.from_settings(remote)
    sha = writer.put(b"face crop")
    # Another machine: its own data directory, the same bucket.
    other = remote.model_copy(update={"data_dir": settings.data_dir / "elsewhere"})
    reader = ImageStore.from_settings(other)
    assert reader.cache_dir is not None and not reader.cache_dir.exists()
    assert reader.read(sha) == b"face crop"
    cached = reader.cache_dir / f"{sha[:2]}/{sha[2:4]}/{sha}"
    assert cached.read_bytes() == b"face crop"
    writer.objects.delete(f"{sha[:2]}/{sha[2:4]}/{sha}")
    assert reader.read(sha) == b"face crop", "immutable objects are served from the cache"


# -- the folder backend's own crash safety ---------------------------------------------------------


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    store = ImageStore(tmp_path / "images")

    def boom(*_args):
        raise OSError("disk full")

    # The failure is injected at the OS boundary (fsync), not in our code.
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"payload")
    monkeypatch.undo()
    assert store.names() == []
    assert not any(p.is_file() for p in (tmp_path / "images").rglob("*"))


def test_check_sweeps_temp_files_of_a_killed_folder_write(tmp_path: Path, sqlite_engine: Engine) -> None:
    store = ImageStore(tmp_path / "images")
    kept = store.put(b"kept")
    with session_scope(sqlite_engine) as session:
        session.add(Image(sha256=kept, status=ImageStatus.accepted, stored=True))
    assert isinstance(store.objects, FolderObjects)
    leftover = store.objects.path(f"{kept[:2]}/{kept[2:4]}/.{kept}.crashed.tmp")
    leftover.write_bytes(b"half")
    report = store.check(sqlite_engine)
    assert report.orphans == [f"{kept[:2]}/{kept[2:4]}/.{kept}.crashed.tmp"]
    assert store.check(sqlite_engine, fix=True).removed == 1
    assert not leftover.exists() and store.check(sqlite_engine).clean
