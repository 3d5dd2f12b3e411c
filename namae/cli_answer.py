"""`namae classify` and `namae eval`: the active (or a chosen) model answering pictures, one by
one or as an open-world evaluation with its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from catalog.errors import CatalogError
from catalog.settings import Settings
from namae.cli_shared import _registry, friendly, load_settings
from namae.output import console, escape, print_table, short_names


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
    classifier = Classifier.from_registry(_registry(settings), int8=settings.registry.int8)
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


@friendly
def evaluate(
    known: Annotated[Path, typer.Argument(help="Folder per character the model knows: KNOWN/<character>/*.")],
    unknown: Annotated[
        Path | None, typer.Option(help="Folder per character the model does not know (strangers, few-shot).")
    ] = None,
    not_characters: Annotated[Path | None, typer.Option(help="Pictures with no character in them.")] = None,
    posts: Annotated[
        Path | None,
        typer.Option(help="Folder per known character of whole posts, answered as the bot answers them."),
    ] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the active one).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: <data>/evals/<version>-<time>).")
    ] = None,
    draws: Annotated[int, typer.Option(help="Random draws per few-shot size.")] = 3,
) -> None:
    """Evaluate a model version in the open world: report.md, plots and report.json."""
    from datetime import UTC, datetime

    from media.decode import DecodeLimits
    from models.classifier import Classifier
    from models.memory import MEMORY_NAME, CharacterMemory
    from trainer import openeval, openeval_answers, openeval_posts, openeval_report

    settings = load_settings()
    given = (
        ("known", known),
        ("--unknown", unknown),
        ("--not-characters", not_characters),
        ("--posts", posts),
    )
    for label, folder in given:
        if folder is not None and not folder.is_dir():
            raise CatalogError(f"{label} {folder}: not a folder")
    registry = _registry(settings)
    chosen = version or registry.require_active()[0]
    folder = registry.version_dir(chosen)
    detector = _detector_or_none(settings)
    classifier = Classifier.load(folder, int8=settings.registry.int8)
    if not (folder / MEMORY_NAME).is_file():
        raise CatalogError(f"model {chosen} has no character memory ({MEMORY_NAME}); retrain it first")
    memory = CharacterMemory.load(folder / MEMORY_NAME)

    def say(message: str) -> None:
        console.print(f"[dim]{message}[/dim]", highlight=False)

    limits = DecodeLimits.from_settings(settings)
    say(f"reading {known}")
    known_set = openeval_answers.read_folder(known, limits, per_character=True)
    if not known_set.images:
        raise CatalogError(f"{known}: no readable pictures in its character folders")
    unknown_set = openeval_answers.read_folder(unknown, limits, per_character=True) if unknown else None
    others = (
        openeval_answers.read_folder(not_characters, limits, per_character=False) if not_characters else None
    )
    result = openeval.evaluate(
        classifier, memory, known_set, unknown=unknown_set, not_characters=others, finder=detector,
        draws=draws, progress=say,
    )  # fmt: skip
    if posts is not None:
        posted = openeval_answers.read_folder(posts, limits, per_character=True)
        if not posted.images:
            raise CatalogError(f"--posts {posts}: no readable pictures in its character folders")
        say(f"answering {len(posted.images)} posts as the bot sees them")
        result["posts"] = openeval_posts.evaluate_posts(classifier, posted, detector)
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
    by_character = result.get("unknown", {}).get("by_character", {})
    if by_character:
        worst, row = max(by_character.items(), key=lambda item: item[1]["named"])
        mostly = next(iter(row["as"]), None)
        table.add_row(
            f"  most named: {worst}" + (f", mostly as {mostly}" if mostly else ""), f"{row['named']:.1%}", ""
        )
    if "posts" in result:
        p = result["posts"]
        table.add_row("posts: no face found", f"{p['no_face_found']:.1%}", "")
        table.add_row(
            "posts: named / precision", f"{p['answer']['coverage']:.1%} / {p['answer']['precision']:.1%}", ""
        )
    for shots, row in result.get("few_shot", {}).get("by_shots", {}).items():
        table.add_row(f"new character from {shots} faces: top-1", f"{row['top1']:.1%}", "")
        if "strangers_named" in row:
            table.add_row(
                f"  strangers then named (half added from {shots})", f"{row['strangers_named']:.1%}", ""
            )
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
