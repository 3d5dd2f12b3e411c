from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, text

from catalog.db import current_revision, downgrade, make_engine, upgrade
from catalog.schema import Base


def test_upgrade_creates_every_table_and_second_upgrade_is_a_noop(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    head = current_revision(engine)
    assert head is not None
    upgrade(engine)
    assert current_revision(engine) == head
    assert set(inspect(engine).get_table_names()) == tables


def test_downgrade_of_the_last_migration_then_upgrade_again(engine: Engine) -> None:
    head = current_revision(engine)
    downgrade(engine, "-1")
    assert current_revision(engine) != head
    upgrade(engine)
    assert current_revision(engine) == head
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_sqlite_has_wal_busy_timeout_and_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_fresh_sqlite_file_is_created_in_the_data_directory(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'namae.db'}")
    upgrade(engine)
    assert (tmp_path / "nested" / "namae.db").is_file()
    engine.dispose()


def test_migrations_match_the_schema(engine: Engine) -> None:
    """What the migrations build is what catalog.schema declares (no drift either way)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_0003_keeps_the_last_attempt_and_the_last_success_apart(engine: Engine) -> None:
    """Issue 15 item 10: a failed scrape stamped `last_run_at` like a successful one. Existing
    stamps become attempts; a source with a cursor had a whole scan, so its stamp is a success too."""
    downgrade(engine, "0002")
    stamp = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO characters (id, name, slug, active, created_at) VALUES (1, 'Rem', 'rem', :t, :s)"
            ),
            {"t": True, "s": stamp},
        )
        for source_id, cursor in ((1, "t3_abc"), (2, None)):
            conn.execute(
                text(
                    "INSERT INTO sources (id, character_id, kind, subreddit, nsfw_allowed, active, cursor,"
                    " last_run_at, created_at) VALUES (:id, 1, 'subreddit', :sub, :f, :t, :cursor, :s, :s)"
                ),
                {
                    "id": source_id,
                    "sub": f"Sub{source_id}",
                    "f": False,
                    "t": True,
                    "cursor": cursor,
                    "s": stamp,
                },
            )
    upgrade(engine, "0003")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, last_attempt_at, last_success_at FROM sources ORDER BY id")
        ).all()
    assert [(r.id, _utc(r.last_attempt_at), _utc(r.last_success_at)) for r in rows] == [
        (1, stamp, stamp),
        (2, stamp, None),
    ]
    downgrade(engine, "0002")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT last_run_at FROM sources ORDER BY id")).scalars().all()
    assert [_utc(value) for value in back] == [stamp, stamp]
    upgrade(engine)


def _utc(value: datetime | str | None) -> datetime | None:
    """SQLite hands DateTime columns back as text through plain SQL."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
