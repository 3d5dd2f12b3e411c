"""`namae worker`, `bot`, `run` and `demo`: the long-running parts of the product, alone, together,
or all of it offline against the sandbox."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from catalog.errors import CatalogError
from namae.cli_shared import catalog_engine, friendly, load_settings
from namae.output import console, escape

# --- worker -----------------------------------------------------------------------------------


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


# --- demo -----------------------------------------------------------------------------------------


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
