"""The `namae` command line. Heavy imports (torch, discord.py, asyncpraw) happen inside the
commands that need them, so that the bot's small install can run its own commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from catalog.errors import CatalogError
from catalog.settings import Settings

app = typer.Typer(
    help="namae: who is that character? Scrape, train, and answer in Discord.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The catalog database.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
characters_app = typer.Typer(help="Characters and their Reddit sources.", no_args_is_help=True)
store_app = typer.Typer(help="The content-addressed image store.", no_args_is_help=True)
jobs_app = typer.Typer(help="The job queue.", invoke_without_command=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(characters_app, name="characters")
app.add_typer(store_app, name="store")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """User errors become one red line and exit status 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CatalogError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CatalogError(f"invalid configuration: {exc}") from exc
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migration chatter on every command hides what the command itself says.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def catalog_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    from catalog.db import open_catalog

    return open_catalog(settings.resolved_database_url, migrate=migrate)


# --- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create or migrate the catalog database to the newest schema."""
    from catalog.db import current_revision, make_engine, upgrade

    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine, revision)
    console.print(f"catalog at revision {current_revision(engine)}")


@db_app.command("downgrade")
@friendly
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1.")]) -> None:
    """Migrate the catalog database back to an earlier revision."""
    from catalog.db import current_revision, downgrade, make_engine

    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
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
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "hosts":
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


# --- characters -------------------------------------------------------------------------------


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@characters_app.command("add")
@friendly
def characters_add(
    name: Annotated[str, typer.Argument(help="The character's name.")],
    alias: Annotated[
        list[str] | None, typer.Option("--alias", "-a", help="Other names (repeat or comma-separate).")
    ] = None,
    series: Annotated[str | None, typer.Option(help="The series the character is from.")] = None,
    subreddit: Annotated[
        list[str] | None, typer.Option("--subreddit", "-s", help="The character's own subreddits.")
    ] = None,
    title_subreddit: Annotated[
        list[str] | None,
        typer.Option(
            "--title-subreddit", "-t", help="Series subreddits searched for posts naming the character."
        ),
    ] = None,
    thread: Annotated[
        list[str] | None,
        typer.Option("--thread", help="Reddit thread ids whose comments link images by name."),
    ] = None,
    comment_subreddit: Annotated[
        str | None, typer.Option(help="Subreddit whose discussion threads are searched for comment links.")
    ] = None,
    flair: Annotated[str | None, typer.Option(help="Only posts or threads with this flair.")] = None,
    nsfw: Annotated[bool, typer.Option(help="Allow NSFW posts from these sources.")] = False,
    queue_scrape: Annotated[
        bool, typer.Option("--scrape/--no-scrape", help="Queue a scrape job for the worker.")
    ] = False,
) -> None:
    """Add a character with its aliases and Reddit sources."""
    from catalog.characters import NewCharacter, add_character
    from catalog.jobs import JobQueue

    engine = catalog_engine(load_settings())
    spec = NewCharacter(
        name=name,
        aliases=_split(alias),
        series=series,
        subreddits=_split(subreddit),
        title_subreddits=_split(title_subreddit),
        comment_threads=_split(thread),
        comment_subreddit=comment_subreddit,
        flair=flair,
        nsfw_allowed=nsfw,
    )
    add_character(engine, spec)
    console.print(f"added [bold]{spec.name.strip()}[/bold]", highlight=False)
    if queue_scrape:
        job_id = JobQueue(engine).enqueue("scrape", {"character": name}, requested_by="cli")
        console.print(f"queued scrape job {job_id}")


@characters_app.command("list")
@friendly
def characters_list(
    all_: Annotated[bool, typer.Option("--all", help="Include removed characters.")] = False,
) -> None:
    """List characters with their sources and image counts."""
    from catalog.characters import list_characters

    engine = catalog_engine(load_settings())
    table = Table("name", "aliases", "series", "images", "sources", "last scrape", "active")
    for info in list_characters(engine, include_inactive=all_):
        table.add_row(
            info.name,
            ", ".join(info.aliases),
            info.series or "",
            str(info.images),
            "\n".join(info.sources),
            info.last_scrape or "never",
            "yes" if info.active else "no",
        )
    console.print(table)


@characters_app.command("info")
@friendly
def characters_info(name: Annotated[str, typer.Argument(help="Name or alias.")]) -> None:
    """Show one character."""
    from catalog.characters import character_info

    info = character_info(catalog_engine(load_settings()), name)
    console.print_json(data=info.__dict__)


@characters_app.command("remove")
@friendly
def characters_remove(name: Annotated[str, typer.Argument(help="Name or alias.")]) -> None:
    """Stop scraping and predicting a character (its images stay for traceability)."""
    from catalog.characters import remove_character

    removed = remove_character(catalog_engine(load_settings()), name)
    console.print(f"removed {removed}", highlight=False)


# --- store ------------------------------------------------------------------------------------


@store_app.command("check")
@friendly
def store_check(
    fix: Annotated[bool, typer.Option(help="Delete orphans, mark missing files not stored.")] = False,
    verify: Annotated[bool, typer.Option(help="Re-hash every file.")] = False,
) -> None:
    """Find files no catalog row refers to, and rows whose file is gone."""
    from catalog.store import ImageStore

    settings = load_settings()
    report = ImageStore(settings.image_store_dir).check(catalog_engine(settings), fix=fix, verify=verify)
    table = Table("check", "count")
    table.add_row("orphans", str(len(report.orphans)))
    table.add_row("missing", str(len(report.missing)))
    table.add_row("corrupt", str(len(report.corrupt)))
    if fix:
        table.add_row("removed", str(report.removed))
    console.print(table)
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

    jobs = JobQueue(catalog_engine(load_settings())).recent(limit=limit)
    table = Table("id", "kind", "status", "progress", "params", "requested by", "message / error")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.kind,
            job.status,
            f"{job.progress:.0%}",
            json.dumps(job.params),
            job.requested_by or "",
            job.error or job.message or "",
        )
    console.print(table)


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
    kind: Annotated[str, typer.Argument(help="scrape, train or promote.")],
    character: Annotated[str | None, typer.Option(help="For scrape: one character.")] = None,
) -> None:
    """Queue a job for the worker."""
    from catalog.jobs import JOB_KINDS, JobQueue

    if kind not in JOB_KINDS:
        raise CatalogError(f"unknown job kind {kind!r}; one of {', '.join(JOB_KINDS)}")
    params = {"character": character} if character else {}
    job_id = JobQueue(catalog_engine(load_settings())).enqueue(kind, params, requested_by="cli")
    console.print(f"queued {kind} job {job_id}")


# --- synthetic data ---------------------------------------------------------------------------


@app.command("synth")
@friendly
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (one folder per character).")],
    characters: Annotated[int, typer.Option(help="Number of characters.")] = 10,
    images: Annotated[int, typer.Option(help="Images per character.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    scenes: Annotated[int, typer.Option(help="Multi-face scenes with ground-truth boxes.")] = 0,
    near_duplicates: Annotated[int, typer.Option(help="Planted near-duplicates with a manifest.")] = 0,
) -> None:
    """Draw synthetic anime-style characters into a folder per character."""
    from sandbox.characters import generate_dataset

    if characters < 1 or images < 1:
        raise CatalogError("--characters and --images must be at least 1")
    manifest = generate_dataset(
        out,
        characters=characters,
        images=images,
        seed=seed,
        scenes=scenes,
        near_duplicates=near_duplicates,
        progress=True,
    )
    console.print(
        f"wrote {len(manifest.images)} images of {len(manifest.characters)} characters to {out}",
        highlight=False,
    )


# --- worker -----------------------------------------------------------------------------------


@app.command("worker")
@friendly
def worker(
    until_idle: Annotated[bool, typer.Option(help="Run the queued jobs, then exit (no schedules).")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and data directory).")] = None,
) -> None:
    """Run schedules and claim queued jobs (scrape, train, promote) until stopped."""
    import signal

    from namae.worker import Worker

    settings = load_settings()
    catalog_engine(settings)
    runner = Worker(settings, name=name)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    console.print(f"worker [bold]{runner.name}[/bold] started", highlight=False)
    try:
        runner.serve(until_idle=until_idle)
    except KeyboardInterrupt:
        runner.stop()
    console.print(f"worker stopped after {runner.jobs_run} jobs")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
