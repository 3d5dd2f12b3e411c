"""Reddit answering 429, 5xx and timeouts for a while: the scan backs off, continues where it was,
loses nothing and duplicates nothing; when Reddit keeps failing it returns what it has."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
import asyncpraw
import asyncprawcore.const
import pytest

from catalog.settings_sections import RedditSettings
from scraper.candidates import SourceView
from scraper.reddit import scan_source
from scraper.reddit_client import MAX_TRIES
from tests.fixtures.reddit import RedditWorld

# (how many, status, path prefix, query parameter the request must carry)
Failures = list[tuple[int, int | str, str, str | None]]


@pytest.mark.parametrize(
    ("kind", "failures"),
    [
        # later pages of the listing fail: the scan resumes from the page it was on
        ("subreddit", [(3, 429, "/r/", "after")]),
        ("subreddit", [(2, 429, "/r/", "after"), (1, 500, "/r/", "after"), (1, "timeout", "/r/", "after")]),
        ("title_search", [(4, 429, "/r/", None), (1, 503, "/r/", None)]),
        ("comment_links", [(2, 429, "/comments/", None), (1, "timeout", "/api/morechildren", None)]),
    ],
)
async def test_transient_failures_lose_nothing_and_duplicate_nothing(
    kind: str,
    failures: Failures,
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    if any(status == "timeout" for _, status, _, _ in failures):
        # Each held request costs asyncprawcore's timeout, read once at its import.
        assert asyncprawcore.const.TIMEOUT <= 2, (
            "add 'tests.fixtures.reddit' to pytest_plugins in tests/conftest.py: it must load before asyncprawcore"
        )
    fake, expected = reddit_world.fake, reddit_world.expected
    character = expected.characters[0]
    for count, status, prefix, query_has in failures:
        fake.fail_next(count, status, path_prefix=prefix, query_has=query_has)

    result = await scan_source(reddit_client, source_view(kind, character), reddit_settings, reddit_http)

    assert fake.pending_failures == 0
    assert result.error is None
    assert result.requests_failed >= 1
    urls = [c.url for c in result.candidates]
    assert len(urls) == len(set(urls))
    assert set(urls) == expected.urls(kind, character)
    assert result.skipped == dict(expected.skipped[(kind, character)])
    assert result.new_cursor is not None
    answered = {r.status for r in fake.requests}
    assert answered >= {status for _, status, _, _ in failures if isinstance(status, int)}


async def test_a_429_waits_as_long_as_reddit_asks_within_the_bound(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retry-After decides the wait (media.retry's policy), cut to rate_limit_backoff x 32; without
    it the wait doubles from rate_limit_backoff."""
    caplog.set_level(logging.INFO, logger="media.retry")
    fake, expected = reddit_world.fake, reddit_world.expected
    character = expected.characters[0]
    fake.fail_next(1, 429, path_prefix="/r/", retry_after="0.25")
    fake.fail_next(1, 429, path_prefix="/r/", retry_after="3600")
    fake.fail_next(1, 429, path_prefix="/r/")
    settings = reddit_settings.model_copy(update={"rate_limit_backoff": 0.02})

    result = await scan_source(reddit_client, source_view("subreddit", character), settings, reddit_http)

    assert result.error is None and result.requests_failed == 3
    waits = [
        r.getMessage().split(" in ")[1].split(" s ")[0] for r in caplog.records if r.name == "media.retry"
    ]
    assert waits == ["0.25", "0.64", "0.08"]  # asked; 32 x 0.02; 0.02 doubled twice


async def test_reddit_failing_for_too_long_returns_what_was_gathered(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    fake, expected = reddit_world.fake, reddit_world.expected
    character = expected.characters[1]
    sub = expected.subreddits[character]
    # The first page comes through; every try at the second one is refused.
    fake.fail_next(MAX_TRIES, 429, path_prefix=f"/r/{sub}/new", query_has="after")

    result = await scan_source(
        reddit_client, source_view("subreddit", character), reddit_settings, reddit_http
    )

    assert result.error is not None and "gave up" in result.error and "429" in result.error
    assert result.requests_failed == MAX_TRIES
    assert result.new_cursor is None  # the old cursor stays, so the unseen posts are not lost
    urls = {c.url for c in result.candidates}
    assert urls and urls < expected.urls("subreddit", character)
    assert result.posts_seen == fake.world.page_size


async def test_a_whole_outage_is_an_error_not_an_exception(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    fake = reddit_world.fake
    fake.fail_next(MAX_TRIES, 429)
    character = reddit_world.expected.characters[2]
    result = await scan_source(
        reddit_client, source_view("title_search", character), reddit_settings, reddit_http
    )
    assert result.candidates == [] and result.new_cursor is None
    assert result.error is not None and "gave up" in result.error
