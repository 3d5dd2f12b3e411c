"""Reddit sources: a character's own subreddits, title mentions in a series' subreddits, and named
image links in discussion comments. Each scan turns one catalog source into image candidates.

Cursors: Reddit ids are base36 and grow with time, so a source's cursor is the fullname of the
newest post (or comment, for comment_links) a finished scan saw; the next scan skips anything at
or below it (and stops there on `new` listings). A scan that ends early keeps the old cursor, so
nothing between is lost; the ingest side deduplicates what is seen twice.

Reddit's own pacing comes from asyncpraw (x-ratelimit-* headers). asyncpraw raises on 429 and,
after two quick retries of its own, on 5xx and network errors; here such errors back off under
`media.retry`'s policy (`rate_limit_backoff`, doubling, at most 32 times that; Reddit's Retry-After
within that bound) and the scan continues where it was. After too many
failures in a row the scan returns what it gathered with `error` set instead of raising.

A run's retrying is bounded as a whole, not per request: every source of one run shares a
`media.retry.RetryBudget` (`reddit.retry_budget_s` seconds of failed requests and back-off), and
when a retry would pass it, or when Reddit cannot be reached at all (connection refused, unknown host), the scan raises
`RedditUnavailable` and the run stops: more sources would only fail the same way.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import asyncpraw
from asyncprawcore.exceptions import (
    BadJSON,
    Forbidden,
    NotFound,
    OAuthException,
    Redirect,
    RequestException,
    ResponseException,
    ServerError,
    TooManyRequests,
)

from catalog.errors import CatalogError
from catalog.schema import LabelOrigin, SourceKind
from catalog.settings import secret_value
from catalog.settings_sections import RedditSettings
from media.retry import RetryBudget, RetryLater, RetryPolicy, parse_retry_after
from scraper.candidates import ORIGINS, ImageCandidate, SourceView
from scraper.links import markdown_links, title_mentions
from scraper.resolve import SkipReason, is_removed, resolve_link, resolve_post

log = logging.getLogger(__name__)

T = TypeVar("T")

REDDIT_WEB = "https://www.reddit.com"
MAX_TRIES = 6  # failures in a row on one request before a scan gives up
MAX_BACKOFF_FACTOR = 32  # the longest wait is rate_limit_backoff * 32
PAGE_LIMIT = 100  # Reddit's largest page
MORE_COMMENTS_LIMIT = 32  # `more` expansions per thread, each one request
MAX_THREADS = 25  # threads found by search for a comment_links source
THREAD_ID = re.compile(r"^[a-z0-9]{1,12}$")


def make_reddit(settings: RedditSettings) -> asyncpraw.Reddit:
    """An asyncpraw client: a script app (username + password) or app-only (read-only) without a
    username. Create it inside a running event loop and `await reddit.close()` when done."""
    client_id = secret_value(settings.client_id)
    client_secret = secret_value(settings.client_secret)
    missing = [
        variable
        for variable, value in (
            ("NAMAE_REDDIT__CLIENT_ID", client_id),
            ("NAMAE_REDDIT__CLIENT_SECRET", client_secret),
        )
        if not value
    ]
    if missing:
        raise CatalogError(
            f"Reddit credentials are missing: set {' and '.join(missing)} "
            "(a script app's id and secret from https://www.reddit.com/prefs/apps)"
        )
    config: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": client_secret,
        "user_agent": settings.user_agent,
        "check_for_updates": False,  # never reach PyPI from a worker
    }
    if settings.username:
        password = secret_value(settings.password)
        if not password:
            raise CatalogError(
                "NAMAE_REDDIT__USERNAME is set but NAMAE_REDDIT__PASSWORD is not: "
                "set both for a script app, or neither for app-only access"
            )
        config["username"] = settings.username
        config["password"] = password
    for key in ("oauth_url", "reddit_url", "short_url"):
        value = getattr(settings, key)
        if value:
            config[key] = value.rstrip("/")
    return asyncpraw.Reddit(**config)


@dataclass
class ScanResult:
    candidates: list[ImageCandidate] = field(default_factory=list)
    new_cursor: str | None = None  # None: keep the source's cursor
    posts_seen: int = 0  # posts (or comments, for comment_links) looked at
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    error: str | None = None  # set when the scan stopped early; candidates are still good
    requests_failed: int = 0  # Reddit errors backed off from (429, 5xx, timeouts)

    @property
    def complete(self) -> bool:
        return self.error is None


class ScanAborted(Exception):
    """Reddit kept failing (or refused the source): the scan stops and reports what it has."""


class RedditUnavailable(CatalogError):
    """Reddit cannot be reached, or kept failing past the run's retry budget: the run stops."""


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


class _Scan:
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

    # ---- Reddit calls that survive 429, 5xx and timeouts -------------------------------------
    async def call(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in self.retry_policy.asynchronous(what):
                with attempt:
                    return await self._once(what, request)
        except RetryLater as failed:
            if self.budget.ran_out:  # every other source would fail the same way
                raise RedditUnavailable(
                    f"Reddit kept failing: {what}: {self.last_failure}; this run already spent "
                    f"{self.budget.spent:.0f} s on Reddit's failures "
                    f"(NAMAE_REDDIT__RETRY_BUDGET_S={self.budget.seconds:g})"
                ) from failed.__cause__
            raise failed.error from None
        raise AssertionError("unreachable")  # the policy returns or raises

    async def _once(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        """One try: a final answer raises `CatalogError` or `ScanAborted`; one that may heal
        raises `RetryLater` (with Reddit's Retry-After on a 429)."""
        retry_after: float | None = None
        try:
            return await request()
        except OAuthException as exc:
            raise CatalogError(f"Reddit refused the credentials: {exc}") from exc
        except (NotFound, Redirect) as exc:
            raise ScanAborted(f"{what}: not found on Reddit ({type(exc).__name__})") from exc
        except Forbidden as exc:
            raise ScanAborted(f"{what}: forbidden (private, quarantined or banned)") from exc
        except RequestException as exc:
            if isinstance(exc.original_exception, aiohttp.ClientConnectorError):
                # Refused, or no such host: not something a few seconds heal.
                raise RedditUnavailable(
                    f"Reddit cannot be reached: {_describe_connection(exc.original_exception)}"
                ) from exc
            reason = _describe(exc)
            cause: BaseException = exc
        except (TooManyRequests, ServerError, BadJSON, TimeoutError) as exc:
            reason = _describe(exc)
            if isinstance(exc, TooManyRequests):
                retry_after = parse_retry_after(exc.retry_after)
            cause = exc
        except ResponseException as exc:
            status = exc.response.status
            if status == 401:
                raise CatalogError("Reddit refused the credentials (401)") from exc
            if status < 500:
                raise ScanAborted(f"{what}: Reddit answered {status}") from exc
            reason = f"status {status}"
            cause = exc
        self.result.requests_failed += 1
        self.last_failure = reason
        gave_up = ScanAborted(f"{what}: gave up after {MAX_TRIES} failures in a row (last: {reason})")
        raise RetryLater(gave_up, retry_after) from cause

    async def pages(self, path: str, params: dict[str, str]) -> AsyncIterator[Any]:
        """Things of a listing, page by page through `after`; a failed page is asked again."""
        after: str | None = None
        yielded = 0
        while yielded < self.limit:
            query = dict(params, limit=str(min(PAGE_LIMIT, self.limit - yielded)))
            if after:
                query["after"] = after
            listing = await self.call(f"GET {path}", lambda q=query: self.reddit.get(path, params=q))
            children = list(getattr(listing, "children", []) or [])
            for thing in children:
                yield thing
                yielded += 1
                if yielded >= self.limit:
                    return
            after = getattr(listing, "after", None)
            if not children or not after:
                return

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


def _describe_connection(error: aiohttp.ClientConnectorError) -> str:
    where = f"{error.host}:{error.port}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"no such host {error.host} (DNS lookup failed)"
    # asyncio's strerror is "Connect call failed (...)"; the errno says what happened.
    number = error.os_error.errno if error.os_error is not None else None
    cause = os.strerror(number) if number else str(error)
    return f"{where} ({cause.lower()})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RequestException):
        original = exc.original_exception
        return f"network error ({type(original).__name__})"
    if isinstance(exc, ResponseException):
        return f"status {exc.response.status}"
    return type(exc).__name__
