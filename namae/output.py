"""How the CLI prints: rich tables and bars on a terminal, plain lines when piped or redirected.

- Text that came from people or from the system (character names, paths, reasons, error messages)
  goes through `escape` before rich sees it, so `[discord]` or `Rem [re:zero]` print as typed.
- `print_table` prints a rich table on a terminal; anywhere else, tab-separated lines (a header line,
  then one line per row), never wrapped, so that `| cut -f1` and `| grep` work.
- `progress` is a rich progress display on a terminal; anywhere else, `trainer.progress.PlainProgress`
  writes a plain line as each task starts, at every tenth of its total and when it ends, so that a
  log file shows how far long work got while it runs, not only at the end.

rich decides what a terminal is (`Console.is_terminal`: a tty, or `TTY_COMPATIBLE=1` /
`FORCE_COLOR` set).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from trainer.progress import PlainProgress, bars

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
    """A progress display for long work (trainer.progress): bars on a terminal, plain lines on
    `out` elsewhere."""
    out = out or console
    if not out.is_terminal:
        return PlainProgress(lambda line: _write_lines(out, [line]))
    return bars(out)
