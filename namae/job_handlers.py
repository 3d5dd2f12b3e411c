"""What each kind of job does: one handler per `catalog.jobs.JobKind` (scrape, import a folder,
train, promote, fill the memory), called with the job's typed parameters in the job's child process
(`namae.job_process`). Heavy imports (asyncpraw, torch) happen inside the handlers, in the child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.jobs import (
    ImportFolderParams,
    JobKind,
    MemoryParams,
    PromoteParams,
    ScrapeParams,
    TrainParams,
)
from catalog.settings import Settings

Progress = Callable[[float, str], None]  # fraction done, what is happening


def _handle_scrape(
    settings: Settings, engine: Engine, params: ScrapeParams, progress: Progress
) -> dict[str, Any]:
    import asyncio

    from catalog.characters import find_character

    character = params.character
    if character:
        with session_scope(engine) as session:
            found = find_character(session, character)
            if not found.active:
                raise CatalogError(f"character {found.name!r} was removed")
    from scraper.run import scrape

    progress(0.01, f"scraping {character or 'every active source'}")
    summary = asyncio.run(
        scrape(
            settings,
            engine,
            character=character,
            source_kind=params.source,
            limit=params.limit,
            on_progress=progress,
            retry_rejected=params.retry_rejected,
        )
    )
    if summary.error:  # the job fails (and is tried again later), its message says why
        raise CatalogError(f"the scrape stopped: {summary.error}")
    return {**summary.as_dict(), "memory": _remember(settings, engine)}


def _handle_import_folder(
    settings: Settings, engine: Engine, params: ImportFolderParams, progress: Progress
) -> dict[str, Any]:
    from pathlib import Path

    from scraper.folder import import_folder

    progress(0.01, f"importing {params.path}")
    summary = import_folder(settings, engine, Path(params.path)).as_dict()
    return {**summary, "memory": _remember(settings, engine)}


def _handle_memory(
    settings: Settings, engine: Engine, params: MemoryParams, progress: Progress
) -> dict[str, Any]:
    return _remember(settings, engine, progress)


def _remember(settings: Settings, engine: Engine, progress: Progress | None = None) -> dict[str, Any]:
    """Labelled faces the active version's memory lacks go into it now (trainer.memory_sync)."""
    from trainer.memory_sync import remember_new_faces

    return remember_new_faces(settings, engine, progress=progress)


def _handle_train(
    settings: Settings, engine: Engine, params: TrainParams, progress: Progress
) -> dict[str, Any]:
    from trainer.run import train_run

    result = train_run(
        settings,
        engine,
        backbone=params.backbone,
        epochs=params.epochs,
        image_size=params.image_size,
        progress=False,
        on_progress=lambda fraction, message: progress(0.95 * fraction, message),
    )
    outcome: dict[str, Any] = {
        "version": result.version,
        "metrics": result.metrics,
        "run_dir": str(result.run_dir),
    }
    if params.promote and result.version:
        outcome["promotion"] = _promote(settings, engine, result.version, force=params.force)
    return outcome


def _handle_promote(
    settings: Settings, engine: Engine, params: PromoteParams, progress: Progress
) -> dict[str, Any]:
    return _promote(settings, engine, params.version, force=params.force)


def _promote(settings: Settings, engine: Engine, version: str | None, *, force: bool) -> dict[str, Any]:
    """Promote `version` (default: the newest candidate) through the registry's gate."""
    from models.registry import Registry

    registry = Registry.from_settings(settings, engine)
    version = version or registry.newest_candidate()
    result = registry.promote(version, force=force)
    registry.prune()
    return {
        "version": version,
        "promoted": result.promoted,
        "reason": result.reason,
        "previous": result.previous,
        # the new version's memory gets the faces labelled since its training set was drawn
        "memory": _remember(settings, engine) if result.promoted else None,
    }


# One handler per `JobKind` (a test checks both ways, and that each takes its kind's parameters).
HANDLERS: dict[JobKind, Callable[[Settings, Engine, Any, Progress], dict[str, Any]]] = {
    JobKind.scrape: _handle_scrape,
    JobKind.import_folder: _handle_import_folder,
    JobKind.train: _handle_train,
    JobKind.promote: _handle_promote,
    JobKind.memory: _handle_memory,
}
