"""Opening a SQLite catalog: its folder is created and checked for writing without getting in the
way of another process opening the same folder at the same moment."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from catalog.db import make_engine


def test_the_write_check_uses_a_probe_of_its_own(tmp_path: Path) -> None:
    """Two bot shards starting together on one data directory: one removed the other's fixed-name
    probe and the second refused to start ("not writable"). Here the fixed name is taken by a
    folder, so a check with a shared probe name fails the same way."""
    data = tmp_path / "data"
    (data / ".namae-write-probe").mkdir(parents=True)

    engine = make_engine(f"sqlite:///{data / 'namae.db'}")

    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".namae-write-probe")) == [
        ".namae-write-probe"
    ]  # the check leaves nothing of its own behind
