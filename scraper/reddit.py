"""Reddit sources: a character's own subreddits, title mentions in a series' subreddits, and named
image links in discussion comments. Each scan turns one catalog source into image candidates.

Cursors: Reddit ids are base36 and grow with time, so a source's cursor is the fullname of the
newest post (or comment, for comment_links) a finished scan saw; the next scan skips anything at
or below it (and stops there on `new` listings). A scan that ends early keeps the old cursor, so
nothing between is lost; the ingest side deduplicates what is seen twice.

Requests, their retries and the run's retry budget are `scraper.reddit_client`'s.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import aiohttp
import asyncpraw

from catalog.schema import LabelOrigin, SourceKind
from catalog.settings_sections import RedditSettings
from media.retry import RetryBudget, RetryPolicy
from scraper.candidates import ORIGINS, ImageCandidate, SourceView
from scraper.links import markdown_links, title_mentions
from scraper.reddit_client import MAX_BACKOFF_FACTOR, MAX_TRIES, RedditCalls, ScanAborted, ScanResult
from scraper.resolve import SkipReason, is_removed, resolve_link, resolve_post

log = logging.getLogger(__name__)

REDDIT_WEB = "https://www.reddit.com"
MORE_COMMENTS_LIMIT = 32  # `more` expansions per thread, each one request
MAX_THREADS = 25  # threads found by search for a comment_links source
THREAD_ID = re.compile(r"^[a-z0-9]{1,12}$")


async def scan_source(
    reddit: asyncpraw.Reddit,
    source: SourceView,
    settings: RedditSettings,
    http: aiohttp.ClientSession,
    *,
    limit: int | None = None,
    budget: RetryBudget | None = None,
) -> ScanResult:
    """Scan one source for new image candidates. Raises CatalogError only when every other source
    would fail the same way: Reddit refuses the credentials, cannot be reached, or kept failing
    past the run's `budget` (`RedditUnavailable`; one per run, shared by its scans). Any other
    failure is recorded in `error` and the candidates gathered so far are returned."""
    budget = budget or RetryBudget(settings.retry_budget_s)
    scan = _Scan(reddit, source, settings, http, limit or settings.limit, budget)
    try:
        if source.kind == SourceKind.subreddit:
            await scan.subreddit()
        elif source.kind == SourceKind.title_search:
            await scan.title_search()
        elif source.kind == SourceKind.comment_links:
            await scan.comment_links()
        else:
            raise ScanAborted(f"source kind {source.kind!r} is not a Reddit source")
    except ScanAborted as exc:
        scan.result.error = str(exc)
        scan.newest = None
        log.warning("source %s (%s) stopped early: %s", source.source_id, source.kind, exc)
    result = scan.result
    result.skipped = dict(scan.skipped)
    if scan.newest is not None and scan.newest > _number(source.cursor):
        result.new_cursor = scan.newest_name
    return result


def _number(fullname: str | None) -> int:
    """The base36 id of a fullname (`t3_abc`) or id as a number; 0 for none or garbage."""
    if not fullname:
        return 0
    thing = fullname.rsplit("_", 1)[-1]
    try:
        return int(thing, 36)
    except ValueError:
        return 0


def build_title_query(names: Iterable[str], flair: str | None = None) -> str:
    """Reddit search for any of the names as phrases; our own title match does the exact part."""
    phrases = [" ".join(name.replace('"', " ").split()) for name in names]
    query = " OR ".join(f'"{phrase}"' for phrase in phrases if phrase)
    if flair:
        flair_clause = f'flair_name:"{flair.replace(chr(34), " ")}"'
        query = f"({query}) {flair_clause}" if query else flair_clause
    return query


class _Scan(RedditCalls):
    def __init__(
        self,
        reddit: asyncpraw.Reddit,
        source: SourceView,
        settings: RedditSettings,
        http: aiohttp.ClientSession,
        limit: int,
        budget: RetryBudget,
    ) -> None:
        self.reddit = reddit
        self.budget = budget
        self.source = source
        self.settings = settings
        self.http = http
        self.limit = max(1, limit)
        self.origin = ORIGINS.get(SourceKind(source.kind), LabelOrigin.subreddit)
        self.cutoff = _number(source.cursor)
        self.result = ScanResult()
        self.skipped: Counter[str] = Counter()
        self.newest: int | None = None
        self.newest_name: str | None = None
        self._urls: set[str] = set()
        base = max(0.0, settings.rate_limit_backoff)
        self.retry_policy = RetryPolicy(
            tries=MAX_TRIES, base=base, cap=base * MAX_BACKOFF_FACTOR, jitter=False, budget=budget
        )
        self.last_failure = ""  # what the last failed request said, for RedditUnavailable

    # ---- sources ------------------------------------------------------------------------------
    def subreddit_name(self) -> str:
        if not self.source.subreddit:
            raise ScanAborted(f"a {self.source.kind} source needs a subreddit")
        return self.source.subreddit

    async def subreddit(self) -> None:
        sub = self.subreddit_name()
        listing = self.settings.listing
        params = {"t": self.settings.time_filter} if listing == "top" else {}
        async for post in self.pages(f"r/{sub}/{listing}", params):
            if self.seen_before(post):
                if listing == "new":
                    break  # everything below the cursor was seen by an earlier scan
                continue
            await self.take_post(post)

    async def title_search(self) -> None:
        sub = self.subreddit_name()
        query = self.source.query or build_title_query(self.source.names, self.source.flair)
        params = {"q": query, "restrict_sr": "on", "sort": "new", "t": "all", "syntax": "lucene"}
        async for post in self.pages(f"r/{sub}/search", params):
            if self.seen_before(post):
                break  # sorted by new: the rest is older still
            if not self.flair_matches(post):
                self.skipped[SkipReason.flair_mismatch] += 1
            elif not title_mentions(str(getattr(post, "title", "")), self.source.names):
                self.skipped[SkipReason.no_name_match] += 1
            else:
                await self.take_post(post)

    async def comment_links(self) -> None:
        for thread_id in await self.thread_ids():
            comments, thread = await self.call(f"comments of {thread_id}", lambda t=thread_id: self.thread(t))
            if getattr(thread, "over_18", False) and not self.source.nsfw_allowed:
                self.skipped[SkipReason.nsfw] += 1
                continue
            for comment in comments:
                if not self.seen_before(comment):
                    await self.take_comment(comment, thread)

    async def thread_ids(self) -> list[str]:
        parts = [p.strip() for p in (self.source.query or "").split(",") if p.strip()]
        if parts and all(THREAD_ID.match(p) for p in parts):
            return list(dict.fromkeys(parts))
        sub = self.subreddit_name()
        if self.source.query:
            query = self.source.query
        elif self.source.flair:
            query = build_title_query([], self.source.flair)
        else:
            raise ScanAborted("a comment_links source needs thread ids, a search query or a flair")
        params = {"q": query, "restrict_sr": "on", "sort": "new", "t": "all", "syntax": "lucene"}
        ids: list[str] = []
        async for post in self.pages(f"r/{sub}/search", params):
            if self.flair_matches(post):
                ids.append(str(post.id))
            if len(ids) >= MAX_THREADS:
                break
        return ids

    async def thread(self, thread_id: str) -> tuple[list[Any], Any]:
        # Fetched afresh on every try: a replace_more cut short cannot be resumed.
        submission = await self.reddit.submission(thread_id)
        await submission.comments.replace_more(limit=MORE_COMMENTS_LIMIT)
        return submission.comments.list(), submission

    # ---- one post, one comment ----------------------------------------------------------------
    def seen_before(self, thing: Any) -> bool:
        """Count a post or comment and move the newest mark; True when it is at or below the
        cursor, that is, an earlier scan already handled it."""
        self.result.posts_seen += 1
        number = _number(getattr(thing, "id", None))
        if self.newest is None or number > self.newest:
            self.newest = number
            self.newest_name = str(getattr(thing, "fullname", None) or getattr(thing, "name", ""))
        if number > self.cutoff:
            return False
        self.skipped[SkipReason.seen] += 1
        return True

    def flair_matches(self, post: Any) -> bool:
        wanted = self.source.flair
        if not wanted:
            return True
        return (getattr(post, "link_flair_text", None) or "").strip().lower() == wanted.strip().lower()

    async def take_post(self, post: Any) -> None:
        if getattr(post, "over_18", False) and not self.source.nsfw_allowed:
            self.skipped[SkipReason.nsfw] += 1
            return
        resolved = await resolve_post(post, self.http, self.settings)
        if resolved.skipped_items:
            self.skipped["gallery_item"] += resolved.skipped_items
        if not resolved.ok:
            self.skipped[resolved.skip or SkipReason.not_image] += 1
            return
        indexes = resolved.gallery_indexes
        for position, url in enumerate(resolved.urls):
            self.add(url, post, gallery_index=indexes[position] if indexes else None)

    async def take_comment(self, comment: Any, thread: Any) -> None:
        body = getattr(comment, "body", "") or ""
        if is_removed({"author": getattr(comment, "author", None), "selftext": body}):
            self.skipped[SkipReason.removed] += 1
            return
        for text, url in markdown_links(body):
            if not title_mentions(text, self.source.names):
                self.skipped[SkipReason.no_name_match] += 1
                continue
            resolved = await resolve_link(url, self.http, self.settings)
            if not resolved.ok:
                self.skipped[resolved.skip or SkipReason.not_image] += 1
                continue
            for image_url in resolved.urls:
                self.add(image_url, thread, comment=comment)

    def add(self, url: str, post: Any, *, gallery_index: int | None = None, comment: Any = None) -> None:
        if url in self._urls:
            return
        self._urls.add(url)
        permalink = getattr(comment if comment is not None else post, "permalink", "") or ""
        author = getattr(comment if comment is not None else post, "author", None)
        score = getattr(comment if comment is not None else post, "score", None)
        self.result.candidates.append(
            ImageCandidate(
                url=url,
                source_id=self.source.source_id,
                character_id=self.source.character_id,
                origin=self.origin,
                post_id=str(post.id),
                permalink=f"{REDDIT_WEB}{permalink}" if permalink.startswith("/") else permalink,
                subreddit=str(getattr(post, "subreddit", "") or self.source.subreddit or ""),
                title=getattr(post, "title", None),
                author=getattr(author, "name", None) if author is not None else None,
                score=score if isinstance(score, int) else None,
                comment_id=str(comment.id) if comment is not None else None,
                gallery_index=gallery_index,
            )
        )
