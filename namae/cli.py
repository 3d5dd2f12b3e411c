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
from rich.table import Table
from sqlalchemy import Engine

from catalog.errors import CatalogError
from catalog.jobs import JobKind, ScrapeParams
from catalog.settings import Settings
from catalog.settings import load_settings as read_settings
from media.errors import MediaError
from namae.output import console, error, escape, print_table, progress, short_names
from trainer.cli import train as train_command

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
    console.print(f"added [bold]{escape(spec.name.strip())}[/bold]", highlight=False)
    if queue_scrape:
        job_id = JobQueue(engine).enqueue(JobKind.scrape, ScrapeParams(character=name), requested_by="cli")
        console.print(f"queued scrape job {job_id}")


@characters_app.command("list")
@friendly
def characters_list(
    all_: Annotated[bool, typer.Option("--all", help="Include removed characters.")] = False,
) -> None:
    """List characters with their sources and image counts."""
    from catalog.characters import list_characters

    engine = existing_catalog(load_settings())
    table = Table("name", "aliases", "series", "images", "sources", "last scrape", "last attempt", "active")
    for info in list_characters(engine, include_inactive=all_) if engine is not None else []:
        table.add_row(
            escape(info.name),
            escape(", ".join(info.aliases)),
            escape(info.series or ""),
            str(info.images),
            escape("\n".join(info.sources)),
            info.last_scrape or "never",
            info.last_attempt or "never",
            "yes" if info.active else "no",
        )
    print_table(table)


@characters_app.command("info")
@friendly
def characters_info(name: Annotated[str, typer.Argument(help="Name or alias.")]) -> None:
    """Show one character."""
    from catalog.characters import character_info

    engine = existing_catalog(load_settings())
    if engine is None:
        raise CatalogError(f"no character named {name!r}: the catalog is empty")
    console.print_json(data=character_info(engine, name).__dict__)


@characters_app.command("remove")
@friendly
def characters_remove(name: Annotated[str, typer.Argument(help="Name or alias.")]) -> None:
    """Stop scraping and predicting a character (its images stay for traceability)."""
    from catalog.characters import remove_character

    removed = remove_character(catalog_engine(load_settings()), name)
    console.print(f"removed {escape(removed)}", highlight=False)


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
    if out.exists() and any(out.iterdir()):
        raise CatalogError(f"{out} is not empty; choose a new folder")
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
        f"wrote {len(manifest.images)} images of {len(manifest.characters)} characters to {escape(str(out))}",
        highlight=False,
    )


# --- scraping -------------------------------------------------------------------------------------


@app.command("scrape")
@friendly
def scrape(
    character: Annotated[str | None, typer.Option(help="Only this character (name or alias).")] = None,
    source: Annotated[
        str | None, typer.Option(help="Only this source kind: subreddit, title_search, comment_links.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many posts per source.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what is new; download and write nothing.")
    ] = False,
    retry_rejected: Annotated[
        bool,
        typer.Option(
            "--retry-rejected",
            help="Try again every earlier rejection that is not final (a blocked address, a size "
            "limit, a 4xx answer); those of the bytes themselves stay.",
        ),
    ] = False,
) -> None:
    """Scan the characters' Reddit sources and catalog every new image."""
    import asyncio

    from scraper.run import scrape as run_scrape
    from scraper.summary import summary_table

    settings = load_settings()
    engine = catalog_engine(settings)
    with progress() as shown:
        summary = asyncio.run(
            run_scrape(
                settings,
                engine,
                character=character,
                source_kind=source,
                limit=limit,
                dry_run=dry_run,
                progress=shown,
                retry_rejected=retry_rejected,
            )
        )
    if not summary.rows:
        console.print("no active sources: add characters with `namae characters add`")
        return
    if summary.error and not (
        summary.totals.posts or summary.totals.seen
    ):  # a table of zeros would say nothing more
        raise CatalogError(f"the scrape stopped: {summary.error}")
    print_table(summary_table(summary))
    if summary.error:
        raise CatalogError(f"the scrape stopped: {summary.error}")


@app.command("import")
@friendly
def import_folder(
    folder: Annotated[Path, typer.Argument(help="A folder with one sub-folder of images per character.")],
) -> None:
    """Import a folder-per-character dataset (the Kaggle Simpsons layout) through the cleaning path."""
    from scraper.folder import import_folder as run_import
    from scraper.summary import summary_table

    settings = load_settings()
    engine = catalog_engine(settings)
    with progress() as shown:
        summary = run_import(settings, engine, folder, progress=shown)
    print_table(summary_table(summary))


# --- training and models ------------------------------------------------------------------------


# One definition of the training options, shared with `python -m trainer` (torchrun's entry).
app.command("train")(train_command)


@app.command("train-faces")
@friendly
def train_faces_command(
    boxes: Annotated[
        list[Path] | None,
        typer.Option(help="A Pascal VOC folder of pictures with face boxes (Annotations/*.xml); repeatable."),
    ] = None,
    heads: Annotated[
        bool, typer.Option(help="The VOC boxes frame whole heads, hair included (e.g. the paperface set).")
    ] = False,
    crops: Annotated[
        list[Path] | None, typer.Option(help="A folder of face crops to paste onto backgrounds; repeatable.")
    ] = None,
    pictures: Annotated[int, typer.Option(min=8, help="Training pictures made from the sources.")] = 5000,
    epochs: Annotated[int, typer.Option(min=1, help="Passes of the head over them.")] = 10,
    side: Annotated[
        int, typer.Option(min=64, help="Long side pictures are resized to when finding faces.")
    ] = 320,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch.")] = 2,
    out: Annotated[
        Path | None, typer.Option(help="Only write face.onnx + face.json to this folder; install nothing.")
    ] = None,
) -> None:
    """Train the anime face finder (CPU, minutes) and install it in the store, where every bot,
    worker and trainer finds it (the bot at its next start); without one they use the cascade.
    With --out, only write it to that folder (try it with NAMAE_FACES__TRAINED_DIR)."""
    import tempfile

    from catalog.finder_store import finder_location, install_finder
    from namae.face_scenes import SandboxScenes
    from trainer.face_train import FaceTrainConfig, train_faces

    settings = load_settings()
    for folder in [*(boxes or []), *(crops or [])]:
        if not folder.is_dir():
            raise CatalogError(f"{folder} is not a folder.")
    if not boxes and not crops:
        console.print("no --boxes or --crops: training on synthetic scenes only", highlight=False)
    config = FaceTrainConfig(
        pictures=pictures,
        epochs=epochs,
        side=side,
        threads=threads,
        boxes=list(boxes or []),
        heads=heads,
        crops=list(crops or []),
        synthetic=SandboxScenes(seed=0),
    )
    with tempfile.TemporaryDirectory(prefix="namae-train-faces-") as staging:
        target = out or Path(staging)
        card = train_faces(config, target, progress=lambda message: console.print(message, highlight=False))
        installed = None if out else install_finder(settings, target)
    console.print(f"face finder {card.onnx_sha256[:12]}", highlight=False)
    table = Table("metric", "value")
    held = card.metrics.get("held_out", {})
    for key in ("pictures", "faces", "precision", "recall", "threshold"):
        if key in held:
            table.add_row(f"held out {key}", str(held[key]))
    table.add_row("seconds", str(card.metrics.get("seconds")))
    print_table(table)
    if installed is None:
        console.print(f"written to {out}", highlight=False)
    else:
        console.print(
            f"installed as {installed.version} in {finder_location(settings)}",
            highlight=False,
        )


def _registry(settings: Settings, *, writes: bool = False):
    """The model registry; one that writes mirrors its changes into the catalog, if there is one."""
    from models.registry import Registry

    return Registry.from_settings(settings, existing_catalog(settings) if writes else None)


def _print_promotion(result) -> None:
    verdict = "[green]promoted[/green]" if result.promoted else "[yellow]not promoted[/yellow]"
    console.print(f"{verdict}: {escape(result.reason)}", highlight=False)
    if not result.promoted:
        raise typer.Exit(1)


@models_app.command("list")
@friendly
def models_list() -> None:
    """Every version in the registry with its status and test metrics."""
    table = Table("version", "status", "backbone", "classes", "test macro-F1", "created", "note")
    for entry in _registry(load_settings()).versions():
        card = entry.card
        f1 = card.metrics.get("test_macro_f1") if card else None
        table.add_row(
            entry.version,
            entry.status,
            card.backbone if card else "",
            str(len(card.labels)) if card else "",
            f"{f1:.3f}" if isinstance(f1, float) else "",
            card.created_at.isoformat(timespec="minutes") if card and card.created_at else "",
            escape(entry.problem or entry.note or ""),
        )
    print_table(table)


@models_app.command("show")
@friendly
def models_show(
    version: Annotated[str | None, typer.Argument(help="Default: the active version.")] = None,
) -> None:
    """A version's model card (labels, thresholds, metrics, provenance)."""
    registry = _registry(load_settings())
    chosen = version or registry.require_active()[0]
    entry = next((e for e in registry.versions() if e.version == chosen), None)
    if entry is None:
        raise CatalogError(f"no model version {chosen!r}")
    console.print_json(data=entry.as_dict())


@models_app.command("promote")
@friendly
def models_promote(
    version: Annotated[str | None, typer.Argument(help="Default: the newest candidate.")] = None,
    force: Annotated[bool, typer.Option(help="Skip the macro-F1 gate (never the integrity checks).")] = False,
) -> None:
    """Make a candidate the active model if it is not worse on the frozen test set."""
    registry = _registry(load_settings(), writes=True)
    _print_promotion(registry.promote(version or registry.newest_candidate(), force=force))


@models_app.command("rollback")
@friendly
def models_rollback() -> None:
    """Make the previously active version active again."""
    console.print(
        f"active version is now [bold]{_registry(load_settings(), writes=True).rollback()}[/bold]",
        highlight=False,
    )


@app.command("classify")
@friendly
def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    top_k: Annotated[int, typer.Option(min=1, help="Candidates per face.")] = 3,
) -> None:
    """Who is in these images? A table of faces and their top candidates, from the active model.

    Piped or redirected, one tab-separated line per face (image path, face, answer, candidates)."""
    from catalog.finder_store import finder_folder
    from media.decode import DecodeLimits, ImageRejected
    from media.faces import face_finder
    from models.answer import answer_image
    from models.classifier import Classifier

    settings = load_settings()
    classifier = Classifier.from_registry(_registry(settings))
    finder = face_finder(settings, finder_folder(settings))
    limits = DecodeLimits.from_settings(settings)
    results: list[dict[str, Any]] = []
    for path in images:
        try:
            data = limits.read_file(path)
            answer = answer_image(data, model=classifier, finder=finder, limits=limits, top_k=top_k)
        except OSError as exc:
            results.append({"image": str(path), "error": f"unreadable: {exc.strerror or exc}"})
        except ImageRejected as exc:
            results.append({"image": str(path), "error": f"{exc.reason}: {exc}"})
        else:
            results.append({"image": str(path), "faces": [face.as_dict() for face in answer.faces]})
    if as_json:
        typer.echo(json.dumps({"model": classifier.version, "results": results}, indent=2))
    else:
        # A terminal's table names each image by its file name (more of the path only where two
        # names are the same): a path cut at the table's width could not tell images apart.
        shown = short_names(images) if console.is_terminal else [str(path) for path in images]
        table = Table(
            "image",
            "face",
            "answer",
            *(f"#{n + 1}" for n in range(top_k)),
            title=f"model {escape(classifier.version)}",
        )
        for name, result in zip(shown, results, strict=True):
            if "error" in result:
                table.add_row(escape(name), "", f"[red]{escape(result['error'])}[/red]")
                continue
            for number, face in enumerate(result["faces"], 1):
                where = "whole image" if face["box"] is None else f"face {number}"
                cells = [escape(f"{c['label']} {c['probability']:.0%}") for c in face["candidates"]]
                table.add_row(escape(name), where, escape(_answer_words(face)), *cells)
        print_table(table)
    if any("error" in result for result in results):
        raise typer.Exit(1)


@app.command("eval")
@friendly
def evaluate(
    known: Annotated[Path, typer.Argument(help="Folder per character the model knows: KNOWN/<character>/*.")],
    unknown: Annotated[
        Path | None, typer.Option(help="Folder per character the model does not know (strangers, few-shot).")
    ] = None,
    not_characters: Annotated[Path | None, typer.Option(help="Pictures with no character in them.")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the active one).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: <data>/evals/<version>-<time>).")
    ] = None,
    draws: Annotated[int, typer.Option(help="Random draws per few-shot size.")] = 3,
) -> None:
    """Evaluate a model version in the open world: report.md, plots and report.json."""
    from datetime import UTC, datetime

    from models.classifier import Classifier
    from models.memory import MEMORY_NAME, CharacterMemory
    from trainer import openeval, openeval_report

    settings = load_settings()
    for label, folder in (("known", known), ("--unknown", unknown), ("--not-characters", not_characters)):
        if folder is not None and not folder.is_dir():
            raise CatalogError(f"{label} {folder}: not a folder")
    registry = _registry(settings)
    chosen = version or registry.require_active()[0]
    folder = registry.version_dir(chosen)
    detector = _detector_or_none(settings)
    classifier = Classifier.load(folder)
    if not (folder / MEMORY_NAME).is_file():
        raise CatalogError(f"model {chosen} has no character memory ({MEMORY_NAME}); retrain it first")
    memory = CharacterMemory.load(folder / MEMORY_NAME)

    def say(message: str) -> None:
        console.print(f"[dim]{message}[/dim]", highlight=False)

    say(f"reading {known}")
    known_set = openeval.read_folder(known, settings.images, per_character=True)
    if not known_set.images:
        raise CatalogError(f"{known}: no readable pictures in its character folders")
    unknown_set = openeval.read_folder(unknown, settings.images, per_character=True) if unknown else None
    others = (
        openeval.read_folder(not_characters, settings.images, per_character=False) if not_characters else None
    )
    result = openeval.evaluate(
        classifier, memory, known_set, unknown=unknown_set, not_characters=others, finder=detector,
        draws=draws, progress=say,
    )  # fmt: skip
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = out or settings.data_dir / "evals" / f"{chosen}-{stamp}"
    path = openeval_report.write(result, known_set, target)
    table = Table("figure", "head + memory", "today", title=f"model {chosen}")
    k = result["known"]
    table.add_row("known: coverage", f"{k['answer']['coverage']:.1%}", f"{k['today']['coverage']:.1%}")
    table.add_row("known: precision", f"{k['answer']['precision']:.1%}", f"{k['today']['precision']:.1%}")
    table.add_row("known: macro-F1", f"{k['answer']['macro_f1']:.4f}", f"{k['today']['macro_f1']:.4f}")
    for key, words in (("unknown", "unknown named"), ("not_characters", "not-characters named")):
        if key in result:
            table.add_row(words, f"{result[key]['named']:.1%}", f"{result[key]['named_today']:.1%}")
    for shots, row in result.get("few_shot", {}).get("by_shots", {}).items():
        table.add_row(f"new character from {shots} faces: top-1", f"{row['top1']:.1%}", "")
    print_table(table)
    console.print(f"report: {path}", highlight=False)


def _detector_or_none(settings: Settings):
    """The anime face finder, or None (with a note) when its cascade cannot be had."""
    from catalog.finder_store import finder_folder
    from media.errors import MediaError
    from media.faces import face_finder

    try:
        return face_finder(settings, finder_folder(settings))
    except (CatalogError, MediaError) as exc:
        console.print(
            f"[yellow]no face finder ({escape(str(exc))}); not-characters are answered whole[/yellow]"
        )
        return None


def _answer_words(face: dict[str, Any]) -> str:
    """One face's answer as the bot words it: a name, a pair, a stranger, not a character."""
    candidates = face["candidates"]
    kind = face.get("kind")
    if kind == "not_character":
        return "not a character"
    if kind == "stranger" or not candidates:
        return "a character I don't know"
    if kind == "pair" and len(candidates) > 1:
        return f"{candidates[0]['label']} or {candidates[1]['label']}"
    if face["unknown"]:
        return "not sure"
    examples = candidates[0].get("examples")
    return candidates[0]["label"] + (f" (from {examples} examples)" if examples else "")


# --- worker -----------------------------------------------------------------------------------


@app.command("worker")
@friendly
def worker(
    until_idle: Annotated[bool, typer.Option(help="Run the queued jobs, then exit (no schedules).")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and data directory).")] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Exit after running this many jobs (e.g. one job per container)."),
    ] = None,
) -> None:
    """Run schedules and claim queued jobs (scrape, train, promote) until stopped."""
    import signal

    from namae.worker import Worker

    settings = load_settings()
    catalog_engine(settings)
    runner = Worker(settings, name=name)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    console.print(f"worker [bold]{escape(runner.name)}[/bold] started", highlight=False)
    try:
        runner.serve(until_idle=until_idle, max_jobs=max_jobs)
    except KeyboardInterrupt:
        runner.stop()
    console.print(f"worker stopped after {runner.jobs_run} jobs")


# --- bot ------------------------------------------------------------------------------------------


@app.command("bot")
@friendly
def bot(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against the offline fake Discord with a scripted guild.")
    ] = False,
    shard_count: Annotated[
        int | None,
        typer.Option(
            "--shard-count",
            help="Shards of the whole bot (default: NAMAE_DISCORD__SHARD_COUNT, else Discord's recommendation).",
        ),
    ] = None,
    shard_ids: Annotated[
        str | None,
        typer.Option(
            "--shard-ids",
            help="The shards this process runs, e.g. 0,1 or 4-7 (default: all; needs a shard count).",
        ),
    ] = None,
) -> None:
    """Run the Discord bot (needs NAMAE_DISCORD__TOKEN, unless --sandbox).

    Several processes, each with its own --shard-ids and one catalog, run one big bot."""
    from bot.sharding import with_shards

    settings = with_shards(load_settings(), shard_count, shard_ids)
    catalog_engine(settings)
    if sandbox:
        import asyncio

        from namae.sandbox_session import run_sandbox

        for line in asyncio.run(run_sandbox(settings)):
            logging.getLogger("namae.sandbox").info("%s", line)
        return
    from bot.runner import run_bot

    run_bot(settings)


@app.command("run")
@friendly
def run() -> None:
    """Bot and worker in one process, for a small community (jobs run in child processes).

    Training runs in a child process, so the bot keeps answering while a model trains."""
    import signal
    import threading

    from bot.runner import run_bot
    from catalog.settings import secret_value
    from namae.worker import Worker

    settings = load_settings()
    if not secret_value(settings.discord.token):
        raise CatalogError(
            "no Discord bot token: set NAMAE_DISCORD__TOKEN (or [discord] token in namae.toml)"
        )
    catalog_engine(settings)
    runner = Worker(settings)
    thread = threading.Thread(target=runner.serve, name="namae-worker", daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        run_bot(settings)
    finally:
        runner.stop()
        thread.join(timeout=60)


@app.command("forget")
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


# --- demo -----------------------------------------------------------------------------------------


@app.command("demo")
@friendly
def demo(
    characters: Annotated[int, typer.Option(help="Synthetic characters.")] = 6,
    images: Annotated[int, typer.Option(help="Extra image posts per character on the fake Reddit.")] = 24,
    held_back: Annotated[int, typer.Option(help="Held-back pictures per character that members post.")] = 5,
    epochs: Annotated[int, typer.Option(help="Training epochs (CPU).")] = 10,
    image_size: Annotated[int, typer.Option(help="Model input size in pixels.")] = 96,
    backbone: Annotated[str | None, typer.Option(help="Backbone (default: the configured one).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for everything drawn.")] = 2026,
    out: Annotated[Path, typer.Option(help="Report folder (replaced if an earlier demo made it).")] = Path(
        "demo-report"
    ),
) -> None:
    """The whole product offline: fake Reddit and Discord, real scraper, trainer, worker and bot."""
    from namae.demo import DemoOptions, run_demo, summary_table

    if characters < 2:
        raise CatalogError("--characters must be at least 2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Voice support is not needed; discord.py's warnings about its missing libraries are noise here.
    logging.getLogger("discord.client").setLevel(logging.ERROR)
    options = DemoOptions(
        characters=characters,
        images=images,
        held_back=held_back,
        epochs=epochs,
        image_size=image_size,
        backbone=backbone,
        seed=seed,
        out=out,
    )
    result = run_demo(options, console)
    console.print(summary_table(result))
    console.print(f"report: [bold]{escape(str(result.report_dir))}[/bold]", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
