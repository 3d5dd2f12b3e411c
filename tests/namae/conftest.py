"""Fixtures for the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `namae` run in an empty data directory with no config file and no database URL."""
    data = tmp_path / "data"
    monkeypatch.setenv("NAMAE_DATA_DIR", str(data))
    monkeypatch.delenv("NAMAE_DATABASE_URL", raising=False)
    monkeypatch.setenv("NAMAE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)
    return data
