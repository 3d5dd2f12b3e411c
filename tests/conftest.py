"""Fixtures shared by every test: a fresh data directory, both databases, the face cascade."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from catalog.db import make_engine, upgrade
from catalog.settings import Settings
from tests.postgres_server import PostgresUnavailable, ThrowawayCluster

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASCADE = SHARED_DATA / "lbpcascade_animeface.xml"
pytest_plugins = [
    "tests.fixtures.reddit",  # first: it sets PRAWCORE_TIMEOUT before asyncprawcore is imported
    "tests.fixtures.synthetic",
    "tests.fixtures.model",
    "tests.fixtures.discord",
    "tests.fixtures.bot",
]

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def cascade_path() -> Path:
    if not CASCADE.is_file():
        pytest.fail(f"the anime face cascade is missing: expected {CASCADE} (../shared/data)")
    return CASCADE


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path, cascade_path: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        faces={"cascade_path": cascade_path},
        _env_file=None,
    )


@pytest.fixture
def sqlite_engine(data_dir: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{data_dir / 'namae.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayCluster | None]:
    """The throwaway cluster the suite started, or None when NAMAE_TEST_POSTGRES_URL names a server."""
    if os.environ.get("NAMAE_TEST_POSTGRES_URL"):
        yield None
        return
    cluster: ThrowawayCluster | None = None
    try:
        cluster = ThrowawayCluster()
        cluster.start()
    except PostgresUnavailable as exc:
        if cluster is not None:
            cluster.stop()
        if IN_CI:
            pytest.fail(f"CI=true and PostgreSQL could not start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: ThrowawayCluster | None) -> str:
    """The URL of a PostgreSQL server's maintenance database."""
    return postgres_cluster.url if postgres_cluster is not None else os.environ["NAMAE_TEST_POSTGRES_URL"]


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    # No pool: a test may restart the server, and a pooled connection would not survive it.
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The catalog on each database: tests that take it run twice."""
    return request.getfixturevalue(f"{request.param}_engine")
