"""The `namae` command line: the typer app, with every command and command group registered in the
order `namae --help` lists them. The commands live in the `namae.cli_*` modules by what they own.
Heavy imports (torch, discord.py, asyncpraw) happen inside the commands that need them, so that the
bot's small install can run its own commands."""

from __future__ import annotations

import typer

from namae.cli_admin import config_app, db_app, forget, jobs_app, store_app
from namae.cli_answer import classify, evaluate
from namae.cli_characters import characters_app
from namae.cli_data import import_folder, scrape, synth
from namae.cli_models import models_app, train_faces_command
from namae.cli_service import bot, demo, run, worker
from trainer.cli import train as train_command

app = typer.Typer(
    help="namae: who is that character? Scrape, train, and answer in Discord.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(characters_app, name="characters")
app.add_typer(store_app, name="store")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")

app.command("synth")(synth)
app.command("scrape")(scrape)
app.command("import")(import_folder)
# One definition of the training options, shared with `python -m trainer` (torchrun's entry).
app.command("train")(train_command)
app.command("train-faces")(train_faces_command)
app.command("classify")(classify)
app.command("eval")(evaluate)
app.command("worker")(worker)
app.command("bot")(bot)
app.command("run")(run)
app.command("forget")(forget)
app.command("demo")(demo)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
