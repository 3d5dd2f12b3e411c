"""How the trainer shows how far long work got (reading pictures, each epoch's steps).

The caller chooses the display: rich's `Progress` or anything with its `add_task`/`update` (the CLI
passes one that writes plain lines when its output is piped), `True` for a rich display of the
trainer's own (`python -m trainer` on a terminal), or `False` for none (tests, the worker, ranks
other than 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Display(Protocol):
    def add_task(self, description: str, *, total: float | None = ...) -> Any: ...

    def update(self, task_id: Any, *, advance: float | None = ..., description: str | None = ...) -> None: ...


ProgressOption = bool | Display


@contextmanager
def progress_display(option: ProgressOption | None) -> Iterator[Display | None]:
    if option is True:
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as own:
            yield own
    elif not option:
        yield None
    else:
        yield option


def counter(display: Display | None, description: str, total: int) -> Callable[[str], None]:
    """One task of `total` steps; call the result once per step, with what to say beside the
    description (a loss), or an empty string."""
    if display is None:
        return lambda _status: None
    task = display.add_task(description, total=total)

    def step(status: str) -> None:
        display.update(task, advance=1, description=f"{description} {status}" if status else description)

    return step
