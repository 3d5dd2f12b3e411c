"""How the CLI prints: rich tables and bars on a terminal, plain lines when piped or redirected.

- Text that came from people or from the system (character names, paths, reasons, error messages)
  goes through `escape` before rich sees it, so `[discord]` or `Rem [re:zero]` print as typed.
- `print_table` prints a rich table on a terminal; anywhere else, tab-separated lines (a header line,
  then one line per row), never wrapped, so that `| cut -f1` and `| grep` work.
- `progress` is a rich progress display on a terminal; anywhere else, `PlainProgress` writes a plain
  line as each task starts, at every tenth of its total and when it ends, so that a log file shows
  how far long work got while it runs, not only at the end.

rich decides what a terminal is (`Console.is_terminal`: a tty, or `TTY_COMPATIBLE=1` /
`FORCE_COLOR` set).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

__all__ = [
    "PlainProgress",
    "console",
    "err_console",
    "error",
    "escape",
    "print_table",
    "progress",
    "short_names",
]

# soft_wrap: a long line (a path, a reason) stays one line when piped, instead of being cut at 80.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

PLAIN_STEPS = 10  # a piped progress line every tenth of a task


def error(message: str) -> None:
    """One red `error:` line on stderr; `message` is printed as it is, never read as markup."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)


def print_table(table: Table, out: Console | None = None) -> None:
    out = out or console
    if out.is_terminal:
        out.print(table)
        return
    columns = table.columns
    lines = [[_plain(column.header) for column in columns]] if table.show_header else []
    lines.extend(
        [_plain(cell) for cell in row] for row in zip(*(column.cells for column in columns), strict=True)
    )
    if table.show_footer:
        lines.append([_plain(column.footer) for column in columns])
    _write_lines(out, ["\t".join(cells) for cells in lines])


def _write_lines(out: Console, lines: list[str]) -> None:
    # Written as they are: rich would expand the tabs and pad the lines.
    for line in lines:
        out.file.write(line + "\n")
    out.file.flush()


def short_names(paths: list[Path]) -> list[str]:
    """Each path by its file name, or by as many of its last parts as tell it from the others."""
    distinct = len(set(paths))
    depth = 1
    while True:
        names = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(names)) == distinct or depth >= max(len(path.parts) for path in paths):
            return names
        depth += 1


def _plain(cell: RenderableType | None) -> str:
    """A cell's text without markup or styles, on one line (lines joined by `, `, tabs as spaces)."""
    if cell is None:
        return ""
    text = (
        cell.plain
        if isinstance(cell, Text)
        else Text.from_markup(cell).plain
        if isinstance(cell, str)
        else str(cell)
    )
    return ", ".join(line.strip() for line in text.splitlines() if line.strip()).replace("\t", " ")


def progress(out: Console | None = None) -> Progress | PlainProgress:
    """A progress display for long work: bars on a terminal, plain lines elsewhere. Task
    descriptions are plain text (a character's name is never read as markup)."""
    out = out or console
    if not out.is_terminal:
        return PlainProgress(out)
    return Progress(
        TextColumn("{task.description}", markup=False, style="progress.description"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )


class PlainProgress:
    """The part of rich's `Progress` that the scraper and the trainer call, written as plain lines:
    `description: 120/480 (25%), 12s` at every tenth of a task's total, and when it completes."""

    def __init__(self, out: Console) -> None:
        self.out = out
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
                _write_lines(self.out, [f"{task.description}: started"])
            return
        tenth = min(PLAIN_STEPS, int(task.completed * PLAIN_STEPS // task.total))
        if not force and tenth <= task.said:
            return
        task.said = tenth
        task.done = task.completed >= task.total
        share = min(1.0, task.completed / task.total)
        elapsed = time.monotonic() - task.started
        _write_lines(
            self.out, [f"{task.description}: {task.completed:g}/{task.total:g} ({share:.0%}), {elapsed:.0f}s"]
        )


class _PlainTask:
    def __init__(self, description: str, total: float | None, completed: float) -> None:
        self.description = description
        self.total = total
        self.completed = completed
        self.said = -1
        self.done = False
        self.started = time.monotonic()
