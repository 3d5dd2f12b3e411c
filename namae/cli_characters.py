"""`namae characters`: add, list, show and remove characters with their Reddit sources."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from catalog.errors import CatalogError
from catalog.jobs import JobKind, ScrapeParams
from namae.cli_shared import catalog_engine, existing_catalog, friendly, load_settings
from namae.output import console, escape, print_table

characters_app = typer.Typer(help="Characters and their Reddit sources.", no_args_is_help=True)


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
