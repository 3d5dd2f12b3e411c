"""`namae db`, `config`, `store`, `jobs` and `forget`: keeping the catalog, its image store and its
job queue in order, and showing the effective configuration."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from catalog.errors import CatalogError
from catalog.jobs import JobKind
from namae.cli_shared import (
    _closed_with_the_command,
    catalog_engine,
    existing_catalog,
    friendly,
    load_settings,
)
from namae.output import console, escape, print_table

db_app = typer.Typer(help="The catalog database.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
store_app = typer.Typer(help="The content-addressed image store.", no_args_is_help=True)
jobs_app = typer.Typer(help="The job queue.", invoke_without_command=True)


# --- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create or migrate the catalog database to the newest schema."""
    from catalog.db import current_revision, make_engine, upgrade

    settings = load_settings()
    engine = _closed_with_the_command(make_engine(settings.resolved_database_url))
    upgrade(engine, revision)
    console.print(f"catalog at revision {current_revision(engine)}")


@db_app.command("downgrade")
@friendly
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1.")]) -> None:
    """Migrate the catalog database back to an earlier revision."""
    from catalog.db import current_revision, downgrade, make_engine

    settings = load_settings()
    engine = _closed_with_the_command(make_engine(settings.resolved_database_url))
    downgrade(engine, revision)
    console.print(f"catalog at revision {current_revision(engine)}")


# --- config -----------------------------------------------------------------------------------


@config_app.command("show")
@friendly
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration, secrets masked."""
    masked = load_settings().masked()
    if as_json:
        typer.echo(json.dumps(masked, indent=2, default=str))
        return
    table = Table("setting", "value", title="namae configuration")
    for key, value in _flatten(masked):
        table.add_row(escape(key), "" if value is None else escape(str(value)))
    print_table(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "hosts":
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


# --- store ------------------------------------------------------------------------------------


@store_app.command("check")
@friendly
def store_check(
    fix: Annotated[bool, typer.Option(help="Delete orphans, mark missing files not stored.")] = False,
    verify: Annotated[bool, typer.Option(help="Re-hash every file.")] = False,
) -> None:
    """Find images no catalog row refers to, and rows whose image is gone (folder or bucket)."""
    from catalog.store import ImageStore

    settings = load_settings()
    store = ImageStore.from_settings(settings)
    engine = catalog_engine(settings) if fix else existing_catalog(settings)
    if engine is None:
        if settings.store.url or settings.image_store_dir.exists():
            raise CatalogError(f"no catalog to check the image store {store.location} against")
        console.print("no catalog and no image store yet: nothing to check")
        return
    report = store.check(engine, fix=fix, verify=verify)
    console.print(f"image store: {escape(store.location)}", highlight=False, soft_wrap=True)
    table = Table("check", "count")
    table.add_row("orphans", str(len(report.orphans)))
    table.add_row("missing", str(len(report.missing)))
    table.add_row("corrupt", str(len(report.corrupt)))
    if fix:
        table.add_row("removed", str(report.removed))
    print_table(table)
    if not report.clean and not fix:
        raise typer.Exit(1)


# --- jobs -------------------------------------------------------------------------------------


@jobs_app.callback()
@friendly
def jobs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many recent jobs.")] = 20,
) -> None:
    """List recent jobs with their progress and errors."""
    if ctx.invoked_subcommand is not None:
        return
    from catalog.jobs import JobQueue

    engine = existing_catalog(load_settings())
    jobs = JobQueue(engine).recent(limit=limit) if engine is not None else []
    table = Table("id", "kind", "status", "progress", "params", "requested by", "message / error")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.kind,
            job.status,
            f"{job.progress:.0%}",
            escape(json.dumps(job.params)),
            escape(job.requested_by or ""),
            escape(job.error or job.message or ""),
        )
    print_table(table)


@jobs_app.command("retry")
@friendly
def jobs_retry(job_id: Annotated[int, typer.Argument(help="A failed job's id.")]) -> None:
    """Queue a failed job again."""
    from catalog.jobs import JobQueue

    if not JobQueue(catalog_engine(load_settings())).retry(job_id):
        raise CatalogError(f"job {job_id} is not failed or cancelled")
    console.print(f"job {job_id} queued again")


@jobs_app.command("add")
@friendly
def jobs_add(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(JobKind)}.")],
    character: Annotated[str | None, typer.Option(help="For scrape: one character.")] = None,
) -> None:
    """Queue a job for the worker."""
    from catalog.jobs import JobQueue

    params = {"character": character} if character else {}
    job_id = JobQueue(catalog_engine(load_settings())).enqueue(kind, params, requested_by="cli")
    console.print(f"queued {kind} job {job_id}")


# --- forget -----------------------------------------------------------------------------------


@friendly
def forget(
    member: Annotated[int, typer.Option("--member", help="The Discord member id whose data is deleted.")],
) -> None:
    """Delete a member's votes and predictions (and images only they posted)."""
    from catalog.retention import forget_member
    from catalog.store import ImageStore

    settings = load_settings()
    counts = forget_member(catalog_engine(settings), member, ImageStore.from_settings(settings))
    console.print(f"forgot member {member}: {escape(str(counts.as_dict()))}", highlight=False)
