"""The real asyncpraw against the fake Reddit: every source kind yields exactly the scripted images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpraw
import pytest
from pydantic import SecretStr

from catalog.errors import CatalogError
from catalog.schema import LabelOrigin
from catalog.settings_sections import RedditSettings
from scraper.candidates import SourceView
from scraper.reddit import scan_source
from scraper.reddit_client import ScanResult, make_reddit
from tests.fixtures.reddit import RedditWorld

KINDS = ("subreddit", "title_search", "comment_links")
ORIGIN = {
    "subreddit": LabelOrigin.subreddit,
    "title_search": LabelOrigin.title_mention,
    "comment_links": LabelOrigin.comment_link,
}


async def _scan(
    reddit: asyncpraw.Reddit,
    view: SourceView,
    settings: RedditSettings,
    http: aiohttp.ClientSession,
    **kw: Any,
) -> ScanResult:
    return await scan_source(reddit, view, settings, http, **kw)


@pytest.mark.parametrize("kind", KINDS)
async def test_each_source_yields_exactly_the_expected_images(
    kind: str,
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    expected = reddit_world.expected
    for character in expected.characters:
        view = source_view(kind, character)
        result = await _scan(reddit_client, view, reddit_settings, reddit_http)
        urls = [c.url for c in result.candidates]
        assert result.error is None
        assert len(urls) == len(set(urls))
        assert set(urls) == expected.urls(kind, character), character
        assert result.skipped == dict(expected.skipped[(kind, character)]), character
        assert result.new_cursor is not None
        for candidate in result.candidates:
            assert candidate.origin == ORIGIN[kind]
            assert (candidate.source_id, candidate.character_id) == (view.source_id, view.character_id)
            assert candidate.permalink.startswith("https://www.reddit.com/r/")
            assert candidate.subreddit == view.subreddit
            assert (candidate.comment_id is not None) == (kind == "comment_links")


async def test_gallery_candidates_carry_their_gallery_positions(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    character = reddit_world.expected.characters[1]
    result = await _scan(reddit_client, source_view("subreddit", character), reddit_settings, reddit_http)
    gallery = [c for c in result.candidates if c.gallery_index is not None]
    assert [c.gallery_index for c in gallery] == [0, 2]  # the failed middle item is skipped
    assert len({c.post_id for c in gallery}) == 1


async def test_expected_bytes_are_served_under_every_candidate_url(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    import hashlib

    character = reddit_world.expected.characters[0]
    truth = reddit_world.expected.by_url()
    result = await _scan(reddit_client, source_view("subreddit", character), reddit_settings, reddit_http)
    roles = {truth[c.url].role for c in result.candidates}
    assert roles == {"image", "exact_duplicate", "near_duplicate", "hostile"}
    for candidate in result.candidates:
        async with reddit_http.get(candidate.url) as response:
            assert response.status == 200
            assert hashlib.sha256(await response.read()).hexdigest() == truth[candidate.url].sha256


async def test_cursor_second_scan_finds_nothing_then_a_new_post(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    world = reddit_world.world
    character = reddit_world.expected.characters[1]
    sub = reddit_world.expected.subreddits[character]
    first = await _scan(reddit_client, source_view("subreddit", character), reddit_settings, reddit_http)
    assert first.candidates and first.new_cursor

    listing_calls = len(reddit_world.fake.api_requests(f"/r/{sub}/new"))
    again = await _scan(
        reddit_client,
        source_view("subreddit", character, cursor=first.new_cursor),
        reddit_settings,
        reddit_http,
    )
    assert again.candidates == [] and again.new_cursor is None and again.error is None
    assert len(reddit_world.fake.api_requests(f"/r/{sub}/new")) == listing_calls + 1  # stopped on page one

    url = world.add_file("i.redd.it", "/brandnew1.jpg", b"new bytes")
    post = world.add_post(sub, "just drawn", url=url)
    third = await _scan(
        reddit_client,
        source_view("subreddit", character, cursor=first.new_cursor),
        reddit_settings,
        reddit_http,
    )
    assert [c.url for c in third.candidates] == [url]
    assert third.new_cursor == post["name"]


@pytest.mark.parametrize("kind", ["title_search", "comment_links"])
async def test_cursor_for_search_and_comments(
    kind: str,
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    world, expected = reddit_world.world, reddit_world.expected
    character = expected.characters[2]
    first = await _scan(reddit_client, source_view(kind, character), reddit_settings, reddit_http)
    view = source_view(kind, character, cursor=first.new_cursor)
    assert (await _scan(reddit_client, view, reddit_settings, reddit_http)).candidates == []

    url = world.add_file("i.redd.it", "/later1.jpg", b"later")
    series = expected.series_subreddit[character]
    if kind == "title_search":
        world.add_post(series, f"{character} returns", url=url)
    else:
        world.add_comment(expected.discussion_threads[series], f"one more: [{character}]({url})")
    assert [c.url for c in (await _scan(reddit_client, view, reddit_settings, reddit_http)).candidates] == [
        url
    ]


async def test_title_search_flair_filter(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    expected = reddit_world.expected
    character = expected.characters[0]
    view = source_view("title_search", character, flair=expected.title_flair)
    result = await _scan(reddit_client, view, reddit_settings, reddit_http)
    assert {c.url for c in result.candidates} == expected.urls(
        "title_search", character, flair=expected.title_flair
    )
    assert expected.urls("title_search", character, flair=expected.title_flair) < expected.urls(
        "title_search", character
    )
    search = reddit_world.fake.api_requests(f"/r/{view.subreddit}/search")[-1]
    assert 'flair_name:"Fanart"' in search.query["q"]


async def test_comment_threads_found_by_flair_search(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    expected = reddit_world.expected
    character = expected.characters[0]
    view = source_view("comment_links", character, query=None, flair=expected.discussion_flair)
    result = await _scan(reddit_client, view, reddit_settings, reddit_http)
    assert {c.url for c in result.candidates} == expected.urls("comment_links", character)
    assert reddit_world.fake.api_requests("/api/morechildren")  # the late comments sat behind `more`


async def test_nsfw_allowed_source_takes_nsfw_posts(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    character = reddit_world.expected.characters[1]
    view = source_view("subreddit", character, nsfw_allowed=True)
    result = await _scan(reddit_client, view, reddit_settings, reddit_http)
    assert "nsfw" not in result.skipped
    assert len(result.candidates) == len(reddit_world.expected.urls("subreddit", character)) + 1


async def test_albums_skipped_with_a_reason_without_imgur_client_id(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    expected = reddit_world.expected
    character = expected.characters[1]
    no_imgur = reddit_settings.model_copy(update={"imgur_client_id": None})
    result = await _scan(reddit_client, source_view("subreddit", character), no_imgur, reddit_http)
    assert {c.url for c in result.candidates} == expected.urls("subreddit", character) - expected.album_urls
    assert result.skipped["imgur_album_no_client_id"] == 1


@pytest.mark.parametrize(("listing", "time_filter"), [("hot", "all"), ("top", "all"), ("top", "hour")])
async def test_hot_and_top_listings(
    listing: str,
    time_filter: str,
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    expected = reddit_world.expected
    character = expected.characters[2]
    chosen = reddit_settings.model_copy(update={"listing": listing, "time_filter": time_filter})
    result = await _scan(reddit_client, source_view("subreddit", character), chosen, reddit_http)
    call = reddit_world.fake.api_requests(f"/r/{expected.subreddits[character]}/{listing}")[0]
    if listing == "top":
        assert call.query["t"] == time_filter
    if time_filter == "hour":  # the fake's clock: a minute per thing, this subreddit is hours old
        assert result.candidates == []
    else:
        assert {c.url for c in result.candidates} == expected.urls("subreddit", character)


async def test_limit_bounds_posts_seen(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    character = reddit_world.expected.characters[1]
    result = await _scan(
        reddit_client, source_view("subreddit", character), reddit_settings, reddit_http, limit=5
    )
    assert result.posts_seen == 5


async def test_unknown_subreddit_is_an_error_not_an_exception(
    reddit_world: RedditWorld,
    reddit_client: asyncpraw.Reddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    view = source_view("subreddit", reddit_world.expected.characters[0], subreddit="NoSuchSub")
    result = await _scan(reddit_client, view, reddit_settings, reddit_http)
    assert result.candidates == [] and result.new_cursor is None
    assert result.error is not None and "not found" in result.error


def test_make_reddit_names_the_missing_variables() -> None:
    with pytest.raises(CatalogError, match="NAMAE_REDDIT__CLIENT_ID and NAMAE_REDDIT__CLIENT_SECRET"):
        make_reddit(RedditSettings())
    with pytest.raises(CatalogError, match="NAMAE_REDDIT__CLIENT_SECRET"):
        make_reddit(RedditSettings(client_id="x"))
    with pytest.raises(CatalogError, match="NAMAE_REDDIT__PASSWORD"):
        make_reddit(RedditSettings(client_id="x", client_secret="y", username="u"))


async def test_script_app_uses_the_password_grant(
    reddit_world: RedditWorld,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    script = reddit_settings.model_copy(update={"username": "namae-bot", "password": SecretStr("hunter2")})
    reddit = make_reddit(script)
    try:
        character = reddit_world.expected.characters[0]
        result = await _scan(reddit, source_view("title_search", character), script, reddit_http)
    finally:
        await reddit.close()
    assert result.error is None and result.candidates
    assert set(reddit_world.fake.tokens.values()) == {"password"}


@pytest.mark.parametrize(
    "update",
    [
        {"client_secret": SecretStr("wrong")},
        {"username": "namae-bot", "password": SecretStr("wrong")},
    ],
)
async def test_refused_credentials_raise_a_catalog_error(
    update: dict[str, Any],
    reddit_world: RedditWorld,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    source_view: Callable[..., SourceView],
) -> None:
    bad = reddit_settings.model_copy(update=update)
    reddit = make_reddit(bad)
    try:
        with pytest.raises(CatalogError, match="credentials"):
            await _scan(
                reddit, source_view("subreddit", reddit_world.expected.characters[0]), bad, reddit_http
            )
    finally:
        await reddit.close()
    assert "wrong" not in str(reddit_world.fake.requests)
