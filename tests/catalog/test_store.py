import os
from pathlib import Path

from sqlalchemy import Engine

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus
from catalog.store import ImageStore, sha256_of


def test_same_bytes_are_stored_once_under_their_hash(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    first = store.put(b"abc")
    second = store.put(b"abc")
    assert first == second == sha256_of(b"abc")
    assert store.read(first) == b"abc"
    assert store.path(first).relative_to(store.root).parts[:2] == (first[:2], first[2:4])
    assert len(store.iter_files()) == 1


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    store = ImageStore(tmp_path / "images")

    def boom(*_args):
        raise OSError("disk full")

    # The failure is injected at the OS boundary (fsync), not in our code.
    monkeypatch.setattr(os, "fsync", boom)
    try:
        store.put(b"payload")
    except OSError:
        pass
    monkeypatch.undo()
    assert store.iter_files() == []
    assert not any(p.name.startswith(".") for p in store.root.rglob("*") if p.is_file())


def test_check_finds_orphans_and_missing_files_and_fix_repairs(tmp_path: Path, sqlite_engine: Engine) -> None:
    store = ImageStore(tmp_path / "images")
    kept = store.put(b"kept")
    orphan = store.put(b"orphan")
    gone = sha256_of(b"gone")
    with session_scope(sqlite_engine) as session:
        session.add(Image(sha256=kept, status=ImageStatus.accepted, stored=True))
        session.add(Image(sha256=gone, status=ImageStatus.accepted, stored=True))
    (store.path(kept).parent / f".{kept}.crashed.tmp").write_bytes(b"half")

    report = store.check(sqlite_engine)
    assert orphan in report.orphans and report.missing == [gone] and not report.clean
    fixed = store.check(sqlite_engine, fix=True)
    assert fixed.removed == 2
    assert store.check(sqlite_engine).clean
    assert store.has(kept) and not store.has(orphan)
