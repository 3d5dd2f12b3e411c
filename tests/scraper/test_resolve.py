"""URL resolution: every kind of link and post, imgur albums through the fake imgur API, fuzzing."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from catalog.settings_sections import RedditSettings
from sandbox.reddit import FakeReddit
from scraper.resolve import Resolved, SkipReason, resolve_link, resolve_post, resolve_url

FUZZ = settings(max_examples=int(os.environ.get("NAMAE_FUZZ_EXAMPLES", "200")), deadline=None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://i.redd.it/abc123.jpg", ("https://i.redd.it/abc123.jpg",)),
        ("http://i.redd.it:8123/abc123.png", ("http://i.redd.it:8123/abc123.png",)),
        ("https://i.redd.it/abc.gif", ("https://i.redd.it/abc.gif",)),
        (
            "https://preview.redd.it/xyz.jpg?width=640&amp;format=pjpg&amp;auto=webp&amp;s=abc",
            ("https://preview.redd.it/xyz.jpg?width=640&format=pjpg&auto=webp&s=abc",),
        ),
        (
            "http://external-preview.redd.it:9/p.jpg?auto=webp&amp;s=0f",
            ("http://external-preview.redd.it:9/p.jpg?auto=webp&s=0f",),
        ),
        ("https://i.imgur.com/AbCdE12.png", ("https://i.imgur.com/AbCdE12.png",)),
        ("https://i.imgur.com/AbCdE12", ("https://i.imgur.com/AbCdE12.jpg",)),
        ("https://imgur.com/AbCdE12", ("https://i.imgur.com/AbCdE12.jpg",)),
        ("http://imgur.com:8123/AbCdE12", ("http://i.imgur.com:8123/AbCdE12.jpg",)),
        ("https://m.imgur.com/AbCdE12.png", ("https://i.imgur.com/AbCdE12.png",)),
        ("https://imgur.com/r/anime/AbCdE12", ("https://i.imgur.com/AbCdE12.jpg",)),
        ("https://art.example.com/works/1.webp", ("https://art.example.com/works/1.webp",)),
    ],
)
def test_direct_images(url: str, expected: tuple[str, ...]) -> None:
    assert resolve_url(url) == Resolved(urls=expected)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://i.imgur.com/AbCdE12.gifv", SkipReason.video),
        ("https://i.imgur.com/AbCdE12.mp4", SkipReason.video),
        ("https://v.redd.it/abc123", SkipReason.video),
        ("https://www.youtube.com/watch?v=x", SkipReason.video),
        ("https://preview.redd.it/x.gif?format=mp4&s=1", SkipReason.video),
        ("https://i.redd.it/noextension", SkipReason.not_image),
        ("https://art.example.com/works/1", SkipReason.not_image),
        ("https://www.reddit.com/gallery/abc123", SkipReason.reddit_link),
        ("https://old.reddit.com/r/x/comments/abc/t/", SkipReason.reddit_link),
        ("/r/x/comments/abc/t/", SkipReason.bad_url),
        ("ftp://i.redd.it/a.jpg", SkipReason.bad_url),
        ("https://i.redd.it/a b.jpg", SkipReason.bad_url),
        ("http://i.redd.it:99999/a.jpg", SkipReason.bad_url),
        ("", SkipReason.bad_url),
        ("https://imgur.com/t/funny/AbCdE12", SkipReason.not_image),
    ],
)
def test_skipped_links(url: str, reason: str) -> None:
    resolved = resolve_url(url)
    assert not resolved.ok and resolved.skip == reason


@pytest.mark.parametrize(
    ("url", "album"),
    [
        ("https://imgur.com/a/AbCdE12", "AbCdE12"),
        ("https://imgur.com/gallery/AbCdE12", "AbCdE12"),
        ("http://imgur.com:81/a/my-trip-to-tokyo-AbCdE12", "AbCdE12"),
    ],
)
def test_imgur_albums_need_the_api(url: str, album: str) -> None:
    resolved = resolve_url(url)
    assert resolved.album == album and not resolved.ok
    assert resolved.skip == SkipReason.imgur_album_no_client_id


def _post(**fields: Any) -> dict[str, Any]:
    base = {"id": "abc", "author": "fan", "title": "t", "is_self": False, "is_video": False}
    return base | fields


async def _resolve(post: dict[str, Any]) -> Resolved:
    async with aiohttp.ClientSession() as http:  # unused unless an album is met
        return await resolve_post(post, http, RedditSettings())


async def test_gallery_keeps_order_and_skips_failed_items() -> None:
    post = _post(
        is_gallery=True,
        gallery_data={
            "items": [{"media_id": "m1"}, {"media_id": "m2"}, {"media_id": "m3"}, {"media_id": "gone"}]
        },
        media_metadata={
            "m3": {
                "status": "valid",
                "e": "Image",
                "s": {"u": "https://preview.redd.it/m3.png?width=9&amp;s=1"},
            },
            "m1": {"status": "valid", "e": "Image", "s": {"u": "https://preview.redd.it/m1.jpg?s=2"}},
            "m2": {"status": "failed"},
        },
    )
    resolved = await _resolve(post)
    assert resolved.urls == (
        "https://preview.redd.it/m1.jpg?s=2",
        "https://preview.redd.it/m3.png?width=9&s=1",
    )
    assert resolved.gallery_indexes == (0, 2)
    assert resolved.skipped_items == 2


async def test_gallery_with_only_failed_items_is_empty() -> None:
    post = _post(
        is_gallery=True,
        gallery_data={"items": [{"media_id": "m"}]},
        media_metadata={"m": {"status": "failed"}},
    )
    assert (await _resolve(post)).skip == SkipReason.gallery_empty


async def test_crosspost_resolves_its_parent() -> None:
    parent = _post(id="p", url="https://i.redd.it/parent.jpg")
    post = _post(url="/r/x/comments/p/t/", crosspost_parent_list=[parent])
    assert (await _resolve(post)).urls == ("https://i.redd.it/parent.jpg",)


async def test_crosspost_of_a_removed_post_is_removed() -> None:
    parent = _post(id="p", url="https://i.redd.it/parent.jpg", removed_by_category="moderator")
    assert (await _resolve(_post(url="/r/x", crosspost_parent_list=[parent]))).skip == SkipReason.removed


async def test_url_overridden_by_dest_wins() -> None:
    post = _post(
        url="https://www.reddit.com/r/x/comments/a/t/", url_overridden_by_dest="https://i.redd.it/o.png"
    )
    assert (await _resolve(post)).urls == ("https://i.redd.it/o.png",)


async def test_preview_of_a_page_that_is_no_image() -> None:
    preview = {"images": [{"source": {"url": "https://external-preview.redd.it/p.jpg?auto=webp&amp;s=9"}}]}
    post = _post(url="https://art.example.com/works/1", post_hint="link", preview=preview)
    assert (await _resolve(post)).urls == ("https://external-preview.redd.it/p.jpg?auto=webp&s=9",)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"url": "https://v.redd.it/x", "is_video": True}, SkipReason.video),
        ({"url": "https://i.redd.it/a.jpg", "post_hint": "hosted:video"}, SkipReason.video),
        ({"url": "https://i.redd.it/a.jpg", "author": "[deleted]"}, SkipReason.removed),
        ({"url": "https://i.redd.it/a.jpg", "author": None}, SkipReason.removed),
        ({"url": "https://i.redd.it/a.jpg", "removed_by_category": "deleted"}, SkipReason.removed),
        ({"is_self": True, "selftext": "[removed]"}, SkipReason.removed),
        ({"is_self": True, "selftext": "hello"}, SkipReason.self_post),
        ({"url": None}, SkipReason.bad_url),
    ],
)
async def test_skipped_posts(fields: dict[str, Any], reason: str) -> None:
    assert (await _resolve(_post(**fields))).skip == reason


async def test_album_through_imgur_api(
    fake_reddit: FakeReddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
) -> None:
    world = fake_reddit.world
    images = [world.add_file("i.imgur.com", f"/Img{i}aa.jpg", b"x") for i in range(3)]
    album = world.add_album("AlbA1234", images)
    resolved = await resolve_link(album, reddit_http, reddit_settings)
    assert resolved.urls == tuple(images)
    call = fake_reddit.requests[-1]
    assert (call.host, call.path, call.status) == ("api.imgur.com", "/3/album/AlbA1234/images", 200)


async def test_album_without_client_id_is_skipped_without_a_request(
    fake_reddit: FakeReddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
) -> None:
    album = fake_reddit.world.add_album("AlbB1234", [])
    settings_without = reddit_settings.model_copy(update={"imgur_client_id": None})
    resolved = await resolve_link(album, reddit_http, settings_without)
    assert resolved.skip == SkipReason.imgur_album_no_client_id
    assert fake_reddit.requests == []


@pytest.mark.parametrize(("album", "client_id"), [("Missing99", "fake-imgur"), ("AlbC1234", "wrong-id")])
async def test_imgur_api_errors_are_a_skip_not_a_crash(
    fake_reddit: FakeReddit,
    reddit_settings: RedditSettings,
    reddit_http: aiohttp.ClientSession,
    album: str,
    client_id: str,
) -> None:
    fake_reddit.world.add_album("AlbC1234", [fake_reddit.world.url("i.imgur.com", "/x.jpg")])
    settings_used = reddit_settings.model_copy(update={"imgur_client_id": SecretStr(client_id)})
    resolved = await resolve_link(
        fake_reddit.world.url("imgur.com", f"/a/{album}"), reddit_http, settings_used
    )
    assert resolved.skip == SkipReason.imgur_api_error


HOSTS = st.sampled_from(
    ["i.redd.it", "preview.redd.it", "external-preview.redd.it", "i.imgur.com", "imgur.com", "m.imgur.com",
     "www.reddit.com", "v.redd.it", "example.com", "xn--80ak6aa92e.com"]
)  # fmt: skip
PATH = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
LINKS = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "javascript"]),
        HOSTS,
        st.sampled_from(["", ":80", ":8123", ":0", ":99999", ":x"]),
        PATH,
    ),
)


@FUZZ
@given(LINKS)
def test_fuzz_resolve_url_never_raises_and_stays_on_the_input(url: str) -> None:
    resolved = resolve_url(url)
    assert resolved.ok != (resolved.skip is not None)
    for out in resolved.urls:
        assert out.lower().startswith(("http://", "https://"))
        assert not any(c.isspace() for c in out)
        # The result is the input, the input unescaped, or imgur's direct form of the input's id.
        stem = out.rsplit("/", 1)[-1].split(".", 1)[0].split("?", 1)[0]
        assert out in (url, url.replace("&amp;", "&")) or (stem and stem in url)
