"""`import_folder`: a folder-per-character dataset (Kaggle Simpsons layout) through the cleaning path."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.schema import LABEL_TRUST, Character, Image, ImageStatus, Label, LabelOrigin, Source, SourceKind
from catalog.settings import Settings
from catalog.store import ImageStore
from sandbox.characters.render import render_character
from sandbox.characters.traits import make_characters
from sandbox.reddit.pictures import default_near_duplicate
from scraper.folder import character_name_from_folder, import_folder
from scraper.rejections import reject_code
from scraper.summary import summary_table

PER_CHARACTER = 4


def folder_name(name: str) -> str:
    return "_".join(name.lower().split())


def write_dataset(root: Path) -> dict[str, list[bytes]]:
    """<root>/<first_last>/pic_NNNN.jpg, plus a near copy, an exact copy, junk and a hidden file."""
    specs = make_characters(3, seed=5)
    written: dict[str, list[bytes]] = {}
    for number, spec in enumerate(specs):
        folder = root / folder_name(spec.name)
        folder.mkdir(parents=True)
        pictures = []
        for variant in range(PER_CHARACTER):
            image, _ = render_character(spec, np.random.default_rng([5, number, variant]))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            pictures.append(buffer.getvalue())
            (folder / f"pic_{variant:04d}.jpg").write_bytes(buffer.getvalue())
        written[spec.name] = pictures
    first, second = (root / folder_name(spec.name) for spec in specs[:2])
    first_pictures = written[specs[0].name]
    (first / "pic_0100.jpg").write_bytes(default_near_duplicate(first_pictures[0], 0))
    (first / "pic_0101.jpg").write_bytes(first_pictures[1])  # the same file twice in one folder
    (first / "notes.txt").write_bytes(b"downloaded from somewhere\n")
    (first / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (second / "pic_0200.jpg").write_bytes(first_pictures[2])  # the same picture under another character
    (root / "README.md").write_text("not a character folder")
    return written


def test_import_folder_dataset(settings: Settings, sqlite_engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "simpsons_dataset"
    written = write_dataset(root)
    names = list(written)
    # One character already exists (by an alias-insensitive name match): it is reused.
    existing = add_character(sqlite_engine, NewCharacter(name=names[0]))

    summary = import_folder(settings, sqlite_engine, root)
    totals = summary.totals
    assert [row.character for row in summary.rows] == sorted(names, key=folder_name)
    assert totals.new == 3 * PER_CHARACTER
    assert totals.near_duplicates == 1
    assert totals.duplicates == 2  # the repeated file, and the picture filed under two characters
    assert dict(totals.rejected) == {"not_an_image": 1}
    assert totals.errors == 0
    assert "Near-dups" in str(summary_table(summary).columns[7].header)

    with session_scope(sqlite_engine) as session:
        characters = {c.name: c.id for c in session.scalars(select(Character))}
        assert set(characters) == set(names)
        assert characters[names[0]] == existing
        sources = session.scalars(select(Source).where(Source.kind == SourceKind.folder)).all()
        assert len(sources) == 3 and all(Path(s.query or "").parent == root.resolve() for s in sources)
        stored = session.scalar(select(func.count(Image.id)).where(Image.stored.is_(True)))
        assert stored == 3 * PER_CHARACTER
        labels = session.execute(
            select(Label.character_id, Label.origin, Label.weight).where(Label.face_id.is_(None))
        ).all()
        assert len(labels) == 3 * PER_CHARACTER
        assert {(origin, weight) for _, origin, weight in labels} == {
            (str(LabelOrigin.folder), LABEL_TRUST[LabelOrigin.folder])
        }
        rejected = session.scalars(select(Image).where(Image.status == ImageStatus.rejected)).one()
        assert reject_code(rejected.reject_reason) == "not_an_image"
        assert rejected.provenance[0].url.endswith("/notes.txt")
        # The picture filed under a second character is kept once and queued for a moderator.
        shared = session.scalars(
            select(Image).where(Image.status == ImageStatus.review, Image.stored.is_(True))
        ).all()
        assert any(len(image.provenance) == 2 for image in shared)
    assert ImageStore.from_settings(settings).check(sqlite_engine, verify=True).clean

    again = import_folder(settings, sqlite_engine, root)
    assert again.totals.known == totals.seen
    assert again.totals.new == again.totals.duplicates == 0


def test_import_folder_refuses_what_is_not_a_dataset(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(CatalogError, match="is not a folder"):
        import_folder(settings, sqlite_engine, tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(CatalogError, match="no character sub-folders"):
        import_folder(settings, sqlite_engine, tmp_path / "flat")


def test_folder_names_become_character_names() -> None:
    assert character_name_from_folder("homer_simpson") == "Homer Simpson"
    assert character_name_from_folder("abraham_grampa_simpson") == "Abraham Grampa Simpson"
    assert character_name_from_folder("Yotsuba Nakano") == "Yotsuba Nakano"
    assert character_name_from_folder("rem-re_zero") == "Rem Re Zero"
