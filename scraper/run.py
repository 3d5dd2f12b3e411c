"""`namae scrape`: scan every active source, download, clean and catalog what is new.

Sources run one after another in id order; within a source, downloads and decoding run
concurrently but catalog decisions are committed in the order the scan listed the images. That
makes a run's result independent of network timing, and a run killed half-way and started again
ends with the same catalog as one that was never interrupted: the committed images are a prefix
of the list, the rest are processed next time in the same order, and a source's cursor only
moves once all of its images are in.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from rich.progress import Progress, TaskID
from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload

from catalog.characters import find_character
from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.finder_store import finder_folder
from catalog.schema import Character, Source, SourceKind, utcnow
from catalog.settings import Settings
from catalog.settings_sections import RedditSettings
from catalog.store import ImageStore
from media.faces import face_finder
from media.fetch import SafeFetcher
from scraper.candidates import ImageCandidate, ImageOrigin, SourceView
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.outcomes import IngestOutcome, OutcomeKind
from scraper.rejections import rejections_to_retry
from scraper.summary import ScrapeSummary, SourceCounts

log = logging.getLogger(__name__)

REDDIT_KINDS = (SourceKind.subreddit, SourceKind.title_search, SourceKind.comment_links)


def describe(view: SourceView) -> str:
    where = f"r/{view.subreddit}" if view.subreddit else (view.query or "")
    if view.kind == SourceKind.title_search and view.flair:
        where += f" [{view.flair}]"
    if view.kind == SourceKind.comment_links and view.query:
        where += f" threads {view.query}"
    return f"{view.kind} {where}".strip()


def source_views(
    engine: Engine, *, character: str | None = None, kind: str | None = None
) -> list[SourceView]:
    """Active Reddit sources of active characters, optionally narrowed, in id order."""
    if kind is not None and kind not in {k.value for k in REDDIT_KINDS}:
        choices = ", ".join(k.value for k in REDDIT_KINDS)
        raise CatalogError(f"unknown source kind {kind!r}: one of {choices}")
    with session_scope(engine) as session:
        query = (
            select(Source)
            .join(Character)
            .where(Source.active.is_(True), Character.active.is_(True))
            .where(Source.kind.in_([k.value for k in REDDIT_KINDS]))
            .options(selectinload(Source.character).selectinload(Character.names))
            .order_by(Source.id)
        )
        if character is not None:
            query = query.where(Source.character_id == find_character(session, character).id)
        if kind is not None:
            query = query.where(Source.kind == kind)
        return [view_of(source) for source in session.scalars(query)]


def view_of(source: Source) -> SourceView:
    names = sorted(source.character.names, key=lambda n: (not n.primary, n.id))
    return SourceView(
        source_id=source.id,
        kind=str(source.kind),
        character_id=source.character_id,
        character_name=source.character.name,
        names=tuple(n.text for n in names),
        subreddit=source.subreddit,
        query=source.query,
        flair=source.flair,
        nsfw_allowed=source.nsfw_allowed,
        cursor=source.cursor,
    )


class _Turnstile:
    """Lets task n commit only after tasks 0..n-1 have committed or given up."""

    def __init__(self) -> None:
        self._next = 0
        self._finished: set[int] = set()
        self._changed = asyncio.Condition()

    async def wait_turn(self, number: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._next == number)

    async def finish(self, number: int) -> None:
        async with self._changed:
            self._finished.add(number)
            while self._next in self._finished:
                self._finished.discard(self._next)
                self._next += 1
            self._changed.notify_all()


async def ingest_in_order(
    ingestor: Ingestor,
    fetcher: SafeFetcher,
    origins: list[ImageOrigin],
    *,
    concurrency: int,
    on_outcome: Callable[[IngestOutcome], None],
) -> None:
    """Fetch and prepare up to `concurrency` images at once; commit them in list order."""
    slots = asyncio.Semaphore(max(1, concurrency))
    turnstile = _Turnstile()

    async def one(number: int, origin: ImageOrigin) -> None:
        try:
            try:
                prepared = await ingestor.fetch_and_prepare(origin, fetcher)
            except Exception as exc:  # a bug for one image must not stop the run: record it
                log.exception("preparing %s failed", origin.url)
                prepared = IngestOutcome(OutcomeKind.error, reason="internal", detail=str(exc))
            await turnstile.wait_turn(number)
            outcome = await ingestor.commit_async(prepared, origin)
            on_outcome(outcome)
        finally:
            slots.release()
            await turnstile.finish(number)

    tasks: list[asyncio.Task[None]] = []
    try:
        for number, origin in enumerate(origins):
            # Acquired in list order, so the lowest unfinished image always holds a slot.
            await slots.acquire()
            tasks.append(asyncio.create_task(one(number, origin)))
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def in_posting_order(candidates: Iterable[ImageCandidate]) -> list[ImageCandidate]:
    """Candidates without repeats, oldest post (then comment) first, a post's images in order.

    Listings come newest first; processing oldest first makes the earliest post of a picture the
    original and later reposts or edits its duplicates, whatever order Reddit listed them in.
    """
    seen: set[tuple[str, str]] = set()
    unique = []
    for candidate in candidates:
        key = (candidate.post_id, candidate.url)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return sorted(unique, key=lambda c: (_base36(c.post_id), _base36(c.comment_id)))


def _base36(thing_id: str | None) -> int:
    try:
        return int(thing_id or "0", 36)
    except ValueError:
        return 0


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# Given `settings.reddit`, returns an asyncpraw.Reddit (or an awaitable of one); default make_reddit.
RedditFactory = Callable[[RedditSettings], Any | Awaitable[Any]]


async def scrape(
    settings: Settings,
    engine: Engine,
    *,
    character: str | None = None,
    source_kind: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    reddit_factory: RedditFactory | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    retry_rejected: bool = False,
) -> ScrapeSummary:
    """Scrape the active Reddit sources (all, one character's, or one kind) into the catalog.

    `dry_run` scans and reports what would be downloaded, writing and downloading nothing.
    Cancelling (Ctrl-C) lets images already being committed finish; nothing is half-written.
    `on_progress(fraction, message)` lets the worker write the job's progress back.
    First, earlier rejections of these sources that a changed setting may now let in are tried
    again (`scraper.rejections`); with `retry_rejected`, every one that is not final.
    """
    from scraper.reddit import RetryBudget, scan_source  # asyncpraw
    from scraper.reddit_client import RedditUnavailable, make_reddit

    views = await asyncio.to_thread(source_views, engine, character=character, kind=source_kind)
    summary = ScrapeSummary(dry_run=dry_run)
    if not views:
        return summary
    # Credentials first: a missing one is the likeliest mistake and should be named at once.
    reddit = await _maybe_await((reddit_factory or make_reddit)(settings.reddit))
    try:
        store = ImageStore.from_settings(settings)
        detector = face_finder(settings, finder_folder(settings))
        index = await asyncio.to_thread(HashIndex.load, engine)
        ingestor = Ingestor(engine, store, settings, detector, index)
        budget = RetryBudget(settings.reddit.retry_budget_s)  # shared by every source of the run
        async with SafeFetcher(settings.download, max_bytes=settings.images.max_bytes) as fetcher:
            await _retry_rejections(
                settings, engine, ingestor, fetcher, views, summary, progress, everything=retry_rejected
            )
            for number, view in enumerate(views):
                counts = SourceCounts(character=view.character_name, source=describe(view))
                summary.rows.append(counts)
                if on_progress is not None:
                    await asyncio.to_thread(
                        on_progress, number / len(views), f"{view.character_name}: {counts.source}"
                    )
                task = (
                    progress.add_task(f"{view.character_name}: {counts.source}", total=None)
                    if progress
                    else None
                )
                # The scan's own requests (imgur's API) go through the guarded session too.
                try:
                    scan = await scan_source(
                        reddit, view, settings.reddit, fetcher.session, limit=limit, budget=budget
                    )
                except RedditUnavailable as exc:
                    counts.scan_error = summary.error = str(exc)
                    await asyncio.to_thread(_finish_source, engine, view.source_id, None, counts)
                    break
                candidates = in_posting_order(scan.candidates)
                counts.posts = scan.posts_seen
                counts.scan_error = scan.error
                counts.seen = len(candidates)
                counts.skipped.update(scan.skipped)
                origins = [ImageOrigin.from_candidate(c) for c in candidates]
                if progress is not None and task is not None:
                    progress.update(task, total=len(origins))
                if dry_run:
                    await _dry_run(ingestor, origins, counts, progress, task)
                    continue
                await ingest_in_order(
                    ingestor,
                    fetcher,
                    origins,
                    concurrency=settings.download.concurrency,
                    on_outcome=_recorder(counts, progress, task),
                )
                await asyncio.to_thread(_finish_source, engine, view.source_id, scan.new_cursor, counts)
            if on_progress is not None:
                totals = summary.totals
                await asyncio.to_thread(
                    on_progress,
                    1.0,
                    f"{totals.new} new, {totals.duplicates + totals.near_duplicates} duplicates",
                )
    finally:
        await _maybe_await(reddit.close())
    return summary


async def _retry_rejections(
    settings: Settings,
    engine: Engine,
    ingestor: Ingestor,
    fetcher: SafeFetcher,
    views: list[SourceView],
    summary: ScrapeSummary,
    progress: Progress | None,
    *,
    everything: bool,
) -> None:
    """Earlier rejections tried again, oldest first, before the sources list anything newer."""
    retries = await asyncio.to_thread(
        rejections_to_retry, engine, settings, [v.source_id for v in views], everything=everything
    )
    if not retries:
        return
    counts = SourceCounts(character="(earlier)", source="rejections tried again", seen=len(retries))
    summary.rows.append(counts)
    if summary.dry_run:
        counts.new = len(retries)  # would be downloaded
        return
    task = progress.add_task("rejections tried again", total=len(retries)) if progress else None
    record = _recorder(counts, progress, task)
    for retry in retries:
        record(await ingestor.retry_rejection(retry, fetcher))


def _recorder(
    counts: SourceCounts, progress: Progress | None, task: TaskID | None
) -> Callable[[IngestOutcome], None]:
    def record(outcome: IngestOutcome) -> None:
        counts.record(outcome)
        if progress is not None and task is not None:
            progress.advance(task)

    return record


async def _dry_run(
    ingestor: Ingestor,
    origins: list[ImageOrigin],
    counts: SourceCounts,
    progress: Progress | None,
    task: TaskID | None,
) -> None:
    for origin in origins:
        if await asyncio.to_thread(ingestor.is_known, origin):
            counts.known += 1
        else:
            counts.new += 1  # would be downloaded
        if progress is not None and task is not None:
            progress.advance(task)


def _finish_source(engine: Engine, source_id: int, new_cursor: str | None, counts: SourceCounts) -> None:
    """Stamp the attempt, and the success when Reddit listed the whole source; move the cursor
    only when every image of the scan is in the catalog, so that images that failed transiently
    are listed (and tried) again next time."""
    with session_scope(engine) as session:
        source = session.get(Source, source_id)
        if source is None:  # removed while we ran
            return
        source.last_attempt_at = utcnow()
        if counts.scan_error is None:
            source.last_success_at = source.last_attempt_at
        if counts.errors == 0 and counts.scan_error is None and new_cursor is not None:
            source.cursor = new_cursor
        elif counts.errors:
            log.warning(
                "%s: %d images failed transiently; the cursor stays for the next run",
                counts.source,
                counts.errors,
            )
