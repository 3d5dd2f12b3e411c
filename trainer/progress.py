"""How long work shows how far it got: the trainer's reading of pictures and each epoch's steps, and
(through `namae.output`) the CLI's imports and scrapes.

A display is rich's `Progress` or anything with its `add_task`/`update`: bars on a terminal;
elsewhere (a pipe, a log file, a scheduler) `PlainProgress`, which says one plain line as a task
starts, at every tenth of its total and when it ends, so that a log shows the work while it runs,
not one finished bar at its end. `progress_display(True)` is the trainer's own choice between the
two (bars on stderr when it is a terminal, log lines otherwise); `False` is none (tests, the worker,
ranks other than 0)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

log = logging.getLogger(__name__)

PLAIN_STEPS = 10  # a plain line every tenth of a task


class Display(Protocol):
    def add_task(self, description: str, *, total: float | None = ...) -> Any: ...

    def update(self, task_id: Any, *, advance: float | None = ..., description: str | None = ...) -> None: ...


ProgressOption = bool | Display


def bars(console: Console) -> Progress:
    """Bars for a terminal; descriptions are plain text (a character's name is never markup)."""
    return Progress(
        TextColumn("{task.description}", markup=False, style="progress.description"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextmanager
def progress_display(option: ProgressOption | None) -> Iterator[Display | None]:
    if option is True:
        console = Console(stderr=True)
        if console.is_terminal:
            with bars(console) as shown:
                yield shown
        else:
            yield PlainProgress(log.info)
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


class PlainProgress:
    """The part of rich's `Progress` that the scraper and the trainer call, said as plain lines
    (`description: 120/480 (25%), 12s`) through `say`: a log call, or a write to a console."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self._tasks: dict[TaskID, _PlainTask] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: float = 0,
        **_: Any,
    ) -> TaskID:
        task_id = TaskID(len(self._tasks))
        self._tasks[task_id] = _PlainTask(description, total, completed)
        self._say(self._tasks[task_id], force=True)
        return task_id

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **_: Any,
    ) -> None:
        task = self._tasks[task_id]
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        self._say(task)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _say(self, task: _PlainTask, *, force: bool = False) -> None:
        if task.done:
            return
        if task.total is None or task.total <= 0:
            if force:
                self.say(f"{task.description}: started")
            return
        tenth = min(PLAIN_STEPS, int(task.completed * PLAIN_STEPS // task.total))
        if not force and tenth <= task.said:
            return
        task.said = tenth
        task.done = task.completed >= task.total
        share = min(1.0, task.completed / task.total)
        elapsed = time.monotonic() - task.started
        self.say(f"{task.description}: {task.completed:g}/{task.total:g} ({share:.0%}), {elapsed:.0f}s")


class _PlainTask:
    def __init__(self, description: str, total: float | None, completed: float) -> None:
        self.description = description
        self.total = total
        self.completed = completed
        self.said = -1
        self.done = False
        self.started = time.monotonic()
