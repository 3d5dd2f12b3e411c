"""Fixtures shared by every test: a fresh data directory, both databases, both object stores, the
face cascade."""

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
from catalog.settings_sections import StoreSettings
from tests.postgres_server import PostgresUnavailable, ThrowawayCluster
from tests.s3_server import (
    S3Endpoint,
    S3Unavailable,
    ThrowawayGateway,
    endpoint_from_environment,
    make_bucket,
)

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
# Tests train one run of the recipe unless they ask for more (the default, three, triples every
# training a test does; tests/trainer/test_first_look.py and test_ensemble.py train several). Set
# here, before any Settings is made, so that the worker's child processes inherit it too.
os.environ.setdefault("NAMAE_TRAIN__MEMBERS", "1")


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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """The S3 server the suite started (Ceph RGW), or the one NAMAE_TEST_S3_URL names."""
    gateway: ThrowawayGateway | None = None
    try:
        external = endpoint_from_environment()
        if external is not None:
            yield external
            return
        gateway = ThrowawayGateway()
        endpoint = gateway.start()
    except S3Unavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true and the S3 server could not start: {exc}")
        pytest.skip(f"S3 server unavailable: {exc}")
    yield endpoint
    gateway.stop()


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint) -> StoreSettings:
    """Store settings naming a fresh, empty bucket on the test server."""
    bucket = f"namae-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_endpoint, bucket)
    return StoreSettings(
        url=f"s3://{bucket}/deploy",
        endpoint=s3_endpoint.endpoint,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key,
        secret_access_key=s3_endpoint.secret_key,
    )


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def store_settings(request: pytest.FixtureRequest) -> StoreSettings:
    """Each object-store backend: tests that take it run twice (the data directory; a bucket)."""
    if request.param == "folder":
        return StoreSettings()
    return request.getfixturevalue("s3_store")
