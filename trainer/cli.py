"""The training command, defined once: `namae train` and `python -m trainer` (the entry torchrun
starts on every rank) are this function, with the same options, help and output.

Configuration comes from the usual `Settings` sources (NAMAE_* variables, namae.toml, .env); the
options override the training section. Under torchrun, rank 0 alone logs, writes the run folder,
registers (and, with --promote, promotes) the candidate and prints the result. Errors a person can
fix (bad dataset, corrupt checkpoint) are one red line and exit status 1.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from catalog.errors import CatalogError
from catalog.settings import Settings

DATA, MODEL, OUTPUT = "Data", "Model and schedule", "Output"


def train(
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
    resume: Annotated[
        Path | None, typer.Option(help="Continue from a checkpoint file (last.pt).", rich_help_panel=MODEL)
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
        bool, typer.Option(help="Progress bars (on a terminal).", rich_help_panel=OUTPUT)
    ] = True,
) -> None:
    """Train a model, write its report and plots, and register it as a candidate version."""
    rank = int(os.environ.get("RANK", "0"))
    console = Console()
    try:
        settings = _settings(rank)
        _train(settings, rank, console, from_folder=from_folder, backbone=backbone, epochs=epochs,
               image_size=image_size, device=device, resume=resume, register=register, promote=promote,
               progress=progress and sys.stderr.isatty())  # fmt: skip
    except CatalogError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _settings(rank: int) -> Settings:
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CatalogError(f"invalid configuration: {exc}") from exc
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
    resume: Path | None,
    register: bool,
    promote: bool,
    progress: bool,
) -> None:
    from catalog.db import open_catalog
    from models.registry import Registry
    from trainer.run import train_run

    engine = None if from_folder is not None else open_catalog(settings.resolved_database_url)
    result = train_run(settings, engine, from_folder=from_folder, backbone=backbone, epochs=epochs,
                       image_size=image_size, device=device, resume=resume, register=register,
                       progress=progress)  # fmt: skip
    if rank != 0:
        return
    table = Table("metric", "value", title=f"training run {result.run_dir.name}")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"report: {result.report_path}", highlight=False)
    if not result.version:
        return
    console.print(f"registered candidate [bold]{result.version}[/bold]", highlight=False)
    if promote:
        if engine is None and (settings.database_url or (settings.data_dir / "namae.db").exists()):
            engine = open_catalog(settings.resolved_database_url)
        outcome = Registry.from_settings(settings, engine).promote(result.version)
        verdict = "[green]promoted[/green]" if outcome.promoted else "[yellow]not promoted[/yellow]"
        console.print(f"{verdict}: {outcome.reason}", highlight=False)
        if not outcome.promoted:
            raise typer.Exit(1)


def main() -> None:
    """`python -m trainer`: the same command as `namae train`."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    app(prog_name="python -m trainer")
