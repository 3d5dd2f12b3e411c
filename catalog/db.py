"""Engines, sessions and migrations. SQLite gets WAL, a busy timeout and foreign keys on."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import CatalogError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created, and must be writable."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(f"data directory {folder} cannot be created: {exc.strerror}") from exc
            if not _writable(folder):
                raise CatalogError(f"data directory {folder} is not writable")
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, pool_pre_ping=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; issue it ourselves so that a write
        # transaction takes the lock up front (BEGIN IMMEDIATE) and never fails mid-way.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, connect_args=_pg_connect_args(parsed))


def _pg_connect_args(url) -> dict[str, object]:
    return {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}


def _writable(folder: Path) -> bool:
    # A probe of its own per call: processes starting together on one data directory (shards of a
    # bot, workers) must not remove each other's probe and conclude the folder is read-only.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".namae-write-probe-"):
            pass
    except OSError:
        return False
    return True


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Autocommit at the driver level so that our "begin" listener controls transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@cache
def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    session = _factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["engine"] = engine
    return config


def check_reachable(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CatalogError(f"database {url} does not answer: {reason}") from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    check_reachable(engine)
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    check_reachable(engine)
    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def open_catalog(url: str, *, migrate: bool = True) -> Engine:
    """The usual entry: an engine on `url`, migrated to the newest schema."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine


def open_existing_catalog(url: str) -> Engine | None:
    """For commands that only read: the catalog at `url` (migrated to the newest schema), or None
    when there is none yet. Nothing is created: no SQLite file, no folder, no tables."""
    parsed = make_url(url)
    in_a_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if in_a_file and not Path(parsed.database).is_file():
        return None
    engine = make_engine(url)
    check_reachable(engine)
    if current_revision(engine) is None:
        engine.dispose()
        return None
    upgrade(engine)
    return engine
