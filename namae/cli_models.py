"""`namae train-faces` and `namae models`: training the face finder, and the model registry's
versions (list, show, promote, roll back)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from catalog.errors import CatalogError
from models.card import ModelCard
from namae.cli_shared import _registry, friendly, load_settings
from namae.output import console, escape, print_table

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


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
    worker and trainer finds it (a running bot within seconds); without one they use the cascade.
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
            _backbone(card),
            str(len(card.labels)) if card else "",
            f"{f1:.3f}" if isinstance(f1, float) else "",
            card.created_at.isoformat(timespec="minutes") if card and card.created_at else "",
            escape(entry.problem or entry.note or ""),
        )
    print_table(table)


def _backbone(card: ModelCard | None) -> str:
    """The backbone, and how many training runs the graph joins (`NAMAE_TRAIN__MEMBERS`) past one."""
    if card is None or card.backbone is None:
        return ""
    members = card.extra.get("members", 1)
    return f"{card.backbone} x {members}" if isinstance(members, int) and members > 1 else card.backbone


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
