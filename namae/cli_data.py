"""`namae synth`, `scrape` and `import`: pictures into the catalog (drawn, from Reddit, from a
folder per character)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.errors import CatalogError
from namae.cli_shared import catalog_engine, friendly, load_settings
from namae.output import console, escape, print_table, progress

# --- synthetic data ---------------------------------------------------------------------------


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
