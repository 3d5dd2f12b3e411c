from sqlalchemy import Engine, inspect

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
