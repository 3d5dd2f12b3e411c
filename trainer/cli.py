"""The training command, defined once: `namae train` and `python -m trainer` (the entry torchrun
starts on every rank) are this function, with the same options, help and output.

Configuration comes from the usual `Settings` sources (NAMAE_* variables, namae.toml, .env); the
options override the training section. Under torchrun, rank 0 alone logs, writes the run folder,
registers (and, with --promote, promotes) the candidate and prints the result. Errors a person can
fix (bad dataset, corrupt checkpoint, an invalid setting) are one red line and exit status 1.

Long work shows how far it got (trainer.progress): bars on a terminal, log lines every tenth of each
epoch otherwise. Stopped by Ctrl-C or SIGTERM, it says which last.pt holds the last finished epoch
and the command that continues it, and exits with 128 + the signal's number.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from catalog.errors import CatalogError
from catalog.settings import Settings, load_settings
from media.errors import MediaError
from trainer import TrainingInterrupted

DATA, MODEL, OUTPUT = "Data", "Model and schedule", "Output"


def train(
    ctx: typer.Context,
    from_folder: Annotated[
        Path | None,
        typer.Option(
            help="Train from a folder-per-character dataset instead of the catalog.", rich_help_panel=DATA
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="mobilenet_v3_small|large, efficientnet_b0, efficientnet_lite0, resnet18|50, convnext_tiny.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Maximum epochs (early stopping may end sooner).", rich_help_panel=MODEL),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(min=32, help="Input side in pixels.", rich_help_panel=MODEL)
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu, cuda or cuda:N.", rich_help_panel=MODEL)
    ] = None,
    members: Annotated[
        int | None,
        typer.Option(
            help="Train 1 to 4 runs (seeds seed, seed+1, ...) and export them as one model: fewer "
            "strangers named, N times the training and answer time.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a stopped run from its last.pt, with the settings and folder it began with.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            help="Export and register the candidate (--no-register: the report only).", rich_help_panel=OUTPUT
        ),
    ] = True,
    promote: Annotated[
        bool, typer.Option(help="Promote the candidate if it passes the gate.", rich_help_panel=OUTPUT)
    ] = False,
    progress: Annotated[
        bool,
        typer.Option(
            help="Show progress: bars on a terminal, log lines every tenth of an epoch otherwise.",
            rich_help_panel=OUTPUT,
        ),
    ] = True,
) -> None:
    """Train a model, write its report and plots, and register it as a candidate version.

    Stopped by Ctrl-C or SIGTERM, it says which checkpoint --resume continues from."""
    rank = int(os.environ.get("RANK", "0"))
    console = Console(soft_wrap=True)
    said = Console(stderr=True, soft_wrap=True)
    stopped_by: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        settings = _settings(rank)
        _train(settings, rank, console, from_folder=from_folder, backbone=backbone, epochs=epochs,
               image_size=image_size, device=device, members=members, resume=resume, register=register,
               promote=promote, progress=progress)  # fmt: skip
    except (CatalogError, MediaError) as exc:
        said.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except TrainingInterrupted as exc:
        if rank == 0:
            said.print(escape(_stopped(exc, ctx.command_path, stopped_by)), highlight=False)
        raise typer.Exit(128 + (stopped_by[0] if stopped_by else signal.SIGINT)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(exc: TrainingInterrupted, command: str, stopped_by: list[int]) -> str:
    by = "SIGTERM" if stopped_by else "Ctrl-C"
    if exc.checkpoint is None:
        return f"training stopped by {by} before its first epoch ended: nothing to resume"
    again = f"{command} --resume {shlex.quote(str(exc.checkpoint))}"
    return f"training stopped by {by}; {exc.checkpoint} holds its last finished epoch: `{again}` continues it"


def _settings(rank: int) -> Settings:
    settings = load_settings()
    prefix = f"[rank {rank}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    logging.basicConfig(
        level=settings.log_level.upper() if rank == 0 else logging.WARNING,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def _train(
    settings: Settings,
    rank: int,
    console: Console,
    *,
    from_folder: Path | None,
    backbone: str | None,
    epochs: int | None,
    image_size: int | None,
    device: str | None,
    members: int | None,
    resume: Path | None,
    register: bool,
    promote: bool,
    progress: bool,
) -> None:
    from catalog.db import open_catalog
    from models.registry import Registry
    from trainer.run import train_run
    from trainer.run_folder import recorded_run

    if resume is not None and from_folder is None:  # the run remembers the folder it trained on
        recorded = recorded_run(resume)
        from_folder = recorded.from_folder if recorded is not None else None
    engine = None if from_folder is not None else open_catalog(settings.resolved_database_url)
    result = train_run(settings, engine, from_folder=from_folder, backbone=backbone, epochs=epochs,
                       image_size=image_size, device=device, members=members, resume=resume,
                       register=register, progress=progress)  # fmt: skip
    if rank != 0:
        return
    shown = {
        key: f"{value:.4f}" if isinstance(value, float) else str(value)
        for key, value in result.metrics.items()
    }
    if console.is_terminal:
        table = Table("metric", "value", title=f"training run {escape(result.run_dir.name)}")
        for key, value in shown.items():
            table.add_row(key, escape(value))
        console.print(table)
    else:  # piped: one `metric<TAB>value` line each, as namae's other tables
        lines = ["metric\tvalue", *(f"{key}\t{value}" for key, value in shown.items())]
        console.file.write("".join(f"{line}\n" for line in lines))
    console.print(f"report: {escape(str(result.report_path))}", highlight=False)
    if not result.version:
        return
    console.print(f"registered candidate [bold]{result.version}[/bold]", highlight=False)
    if promote:
        if engine is None and (settings.database_url or (settings.data_dir / "namae.db").exists()):
            engine = open_catalog(settings.resolved_database_url)
        outcome = Registry.from_settings(settings, engine).promote(result.version)
        verdict = "[green]promoted[/green]" if outcome.promoted else "[yellow]not promoted[/yellow]"
        console.print(f"{verdict}: {escape(outcome.reason)}", highlight=False)
        if not outcome.promoted:
            raise typer.Exit(1)


def main() -> None:
    """`python -m trainer`: the same command as `namae train`."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    app(prog_name="python -m trainer")
