"""What a scrape or a folder import did, per source: the counts, their plain-data form for a job's
result, and the closing table of `namae scrape` / `namae import`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from rich.markup import escape
from rich.table import Table

from scraper.outcomes import IngestOutcome, OutcomeKind


@dataclass
class SourceCounts:
    """What one source (or the folder of one character) gave in one run."""

    character: str
    source: str
    posts: int = 0  # posts (or files) the scan looked at
    seen: int = 0  # image URLs it handed over
    known: int = 0  # already processed in an earlier run: not downloaded
    new: int = 0  # stored (accepted, or kept for review)
    duplicates: int = 0  # the same bytes were already in the catalog
    near_duplicates: int = 0  # a near copy of an image of the same character
    # Review rows written for a moderator: a near copy or the same bytes claimed by another
    # character, several faces in one picture.
    review: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> count
    faces: int = 0
    errors: int = 0  # transient failures: tried again next run
    skipped: Counter[str] = field(default_factory=Counter)  # scan-side reasons (video, nsfw, ...)
    scan_error: str | None = None  # the scan stopped early (Reddit kept failing); its cursor stays

    def record(self, outcome: IngestOutcome) -> None:
        match outcome.kind:
            case OutcomeKind.known:
                self.known += 1
            case OutcomeKind.new | OutcomeKind.review:
                self.new += 1
            case OutcomeKind.duplicate:
                self.duplicates += 1
            case OutcomeKind.near_duplicate:
                self.near_duplicates += 1
            case OutcomeKind.rejected:
                self.rejected[outcome.reason or "unknown"] += 1
            case OutcomeKind.error:
                self.errors += 1
        self.faces += outcome.faces
        self.review += outcome.reviews

    def add(self, other: SourceCounts) -> None:
        for item in fields(self):
            mine = getattr(self, item.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, item.name))
            elif isinstance(mine, int) and not isinstance(mine, bool):
                setattr(self, item.name, mine + getattr(other, item.name))


@dataclass
class ScrapeSummary:
    rows: list[SourceCounts] = field(default_factory=list)
    dry_run: bool = False
    error: str | None = None  # the run stopped early: Reddit unreachable, or its retry budget spent

    @property
    def totals(self) -> SourceCounts:
        total = SourceCounts(character="all", source="all")
        for row in self.rows:
            total.add(row)
        return total

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a job's result: the totals and one entry per source."""

        def plain(counts: SourceCounts) -> dict[str, Any]:
            return {
                item.name: dict(value) if isinstance(value, Counter) else value
                for item in fields(counts)
                for value in [getattr(counts, item.name)]
            }

        return {
            "dry_run": self.dry_run,
            "error": self.error,
            "totals": plain(self.totals),
            "sources": [plain(r) for r in self.rows],
        }


def summary_table(summary: ScrapeSummary) -> Table:
    """The closing table of `namae scrape` / `namae import`: one row per source and a total."""
    title = "Scrape summary (dry run: nothing downloaded)" if summary.dry_run else "Scrape summary"
    table = Table(title=title, show_footer=len(summary.rows) > 1)
    total = summary.totals
    columns: list[tuple[str, Callable[[SourceCounts], str], str]] = [
        ("Character", lambda r: escape(r.character), "total"),
        ("Source", lambda r: escape(r.source), ""),
        ("Posts", lambda r: str(r.posts), str(total.posts)),
        ("Seen", lambda r: str(r.seen), str(total.seen)),
        ("Known", lambda r: str(r.known), str(total.known)),
        ("New", lambda r: str(r.new), str(total.new)),
        ("Duplicates", lambda r: str(r.duplicates), str(total.duplicates)),
        ("Near-dups", lambda r: str(r.near_duplicates), str(total.near_duplicates)),
        ("Review", lambda r: str(r.review), str(total.review)),
        ("Rejected", lambda r: _reasons(r.rejected), _reasons(total.rejected)),
        ("Faces", lambda r: str(r.faces), str(total.faces)),
        ("Errors", lambda r: str(_errors(r)), str(sum(_errors(r) for r in summary.rows))),
    ]
    for name, _, footer in columns:
        numeric = name not in ("Character", "Source", "Rejected")
        table.add_column(name, footer=footer, justify="right" if numeric else "left")
    for row in summary.rows:
        table.add_row(*(cell(row) for _, cell, _ in columns))
    return table


def _errors(row: SourceCounts) -> int:
    return row.errors + int(row.scan_error is not None)


def _reasons(counter: Counter[str]) -> str:
    if not counter:
        return "0"
    detail = escape(", ".join(f"{reason} {count}" for reason, count in sorted(counter.items())))
    return f"{sum(counter.values())} ({detail})"
