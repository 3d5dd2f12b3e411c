"""What every `namae` command shares: the settings with logging set up, the catalog opened for one
command (and closed when it ends), the model registry, and user errors as one red line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from sqlalchemy import Engine

from catalog.errors import CatalogError
from catalog.settings import Settings
from catalog.settings import load_settings as read_settings
from media.errors import MediaError
from namae.output import error

F = TypeVar("F", bound=Callable[..., Any])
_OPENED: list[Engine] = []  # the catalog engines a command opened, closed when it ends


def friendly(func: F) -> F:
    """User errors become one red line and exit status 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CatalogError, MediaError) as exc:
            error(str(exc))
            raise typer.Exit(1) from None
        finally:
            # Closing the connections when the command ends lets SQLite fold its -wal file back in.
            while _OPENED:
                _OPENED.pop().dispose()

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    """The settings, or one line naming every invalid one (a CatalogError)."""
    settings = read_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Migration chatter on every command hides what the command itself says.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def catalog_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    from catalog.db import open_catalog

    return _closed_with_the_command(open_catalog(settings.resolved_database_url, migrate=migrate))


def existing_catalog(settings: Settings) -> Engine | None:
    """For a command that only reads: the catalog, or None when there is none yet (and then
    nothing is created)."""
    from catalog.db import open_existing_catalog

    engine = open_existing_catalog(settings.resolved_database_url)
    return None if engine is None else _closed_with_the_command(engine)


def _closed_with_the_command(engine: Engine) -> Engine:
    _OPENED.append(engine)
    return engine


def _registry(settings: Settings, *, writes: bool = False):
    """The model registry; one that writes mirrors its changes into the catalog, if there is one."""
    from models.registry import Registry

    return Registry.from_settings(settings, existing_catalog(settings) if writes else None)
