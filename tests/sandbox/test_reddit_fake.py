"""The fake Reddit at the HTTP level: tokens, listings, search, comments, headers, failures, files."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sandbox.reddit import FakeReddit, StaticResolver
from tests.fixtures.reddit import RedditWorld


async def _token(http: aiohttp.ClientSession, fake: FakeReddit, **form: str) -> tuple[int, dict[str, Any]]:
    auth = aiohttp.encode_basic_auth(form.pop("client_id", "fake-client"), form.pop("secret", "fake-secret"))
    data = form or {"grant_type": "client_credentials"}
    url = f"{fake.base_url}/api/v1/access_token"
    async with http.post(url, headers={"Authorization": auth}, data=data) as response:
        return response.status, await response.json()


async def _get(http: aiohttp.ClientSession, fake: FakeReddit, path: str, token: str, **params: str) -> Any:
    headers = {"Authorization": f"bearer {token}"}
    async with http.get(f"{fake.base_url}{path}", headers=headers, params=params) as response:
        return response.status, dict(response.headers), await response.json()


@pytest.fixture
async def token(fake_reddit: FakeReddit, reddit_http: aiohttp.ClientSession) -> str:
    status, body = await _token(reddit_http, fake_reddit)
    assert status == 200
    return str(body["access_token"])


async def test_token_grants_and_refusals(fake_reddit: FakeReddit, reddit_http: aiohttp.ClientSession) -> None:
    status, body = await _token(reddit_http, fake_reddit)
    assert status == 200 and body["token_type"] == "bearer" and body["expires_in"] > 0
    status, body = await _token(
        reddit_http, fake_reddit, grant_type="password", username="namae-bot", password="hunter2"
    )
    assert status == 200 and "access_token" in body
    assert sorted(fake_reddit.tokens.values()) == ["client_credentials", "password"]
    status, _ = await _token(reddit_http, fake_reddit, secret="wrong")
    assert status == 401
    status, body = await _token(
        reddit_http, fake_reddit, grant_type="password", username="namae-bot", password="x"
    )
    assert (status, body) == (200, {"error": "invalid_grant"})


async def test_api_needs_a_token(fake_reddit: FakeReddit, reddit_http: aiohttp.ClientSession) -> None:
    fake_reddit.world.add_post("Sub", "hello", url="https://i.redd.it/a.jpg")
    status, _, _ = await _get(reddit_http, fake_reddit, "/r/Sub/new", "not-a-token")
    assert status == 401


async def test_listing_pages_with_after_and_before(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    world = fake_reddit.world
    world.page_size = 3
    posts = [world.add_post("Sub", f"p{i}", url=f"https://i.redd.it/{i}.jpg") for i in range(7)]
    newest_first = [p["name"] for p in reversed(posts)]
    seen: list[str] = []
    after: str | None = None
    for _page in range(10):  # 7 posts at 3 a page: 3 pages; more means `after` never ends
        params = {"limit": "100", **({"after": after} if after else {})}
        status, headers, body = await _get(reddit_http, fake_reddit, "/r/sub/new/", token, **params)
        assert status == 200 and body["kind"] == "Listing"
        seen += [c["data"]["name"] for c in body["data"]["children"]]
        after = body["data"]["after"]
        if after is None:
            break
    assert after is None and seen == newest_first
    _, _, body = await _get(reddit_http, fake_reddit, "/r/Sub/new", token, before=newest_first[4])
    assert [c["data"]["name"] for c in body["data"]["children"]] == newest_first[1:4]
    assert {"x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset"} <= {h.lower() for h in headers}


async def test_text_is_escaped_unless_raw_json(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    preview = {"images": [{"source": {"url": "http://preview.redd.it/x.jpg?a=1&s=2"}}]}
    fake_reddit.world.add_post("Sub", "Tom & <Jerry>", url="https://art.example.com/x", preview=preview)
    _, _, escaped = await _get(reddit_http, fake_reddit, "/r/Sub/new", token)
    _, _, raw = await _get(reddit_http, fake_reddit, "/r/Sub/new", token, raw_json="1")
    post, raw_post = escaped["data"]["children"][0]["data"], raw["data"]["children"][0]["data"]
    assert post["title"] == "Tom &amp; &lt;Jerry&gt;" and raw_post["title"] == "Tom & <Jerry>"
    assert post["preview"]["images"][0]["source"]["url"].endswith("a=1&amp;s=2")


async def test_search_is_loose_and_filters_flair(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    world = fake_reddit.world
    world.add_post("Series", "Aiko Tanaka art", url="https://i.redd.it/1.jpg", link_flair_text="Fanart")
    world.add_post("Series", "Aikoko cosplay", url="https://i.redd.it/2.jpg")
    world.add_post("Series", "unrelated", url="https://i.redd.it/3.jpg", link_flair_text="Fanart")
    world.add_post("Other", "Aiko elsewhere", url="https://i.redd.it/4.jpg")

    async def titles(**params: str) -> list[str]:
        _, _, body = await _get(reddit_http, fake_reddit, "/r/Series/search", token, **params)
        return [c["data"]["title"] for c in body["data"]["children"]]

    assert await titles(q='"Aiko Tanaka" OR "Aiko"', restrict_sr="on", sort="new") == [
        "Aikoko cosplay",
        "Aiko Tanaka art",
    ]
    assert await titles(q='("Aiko") flair_name:"Fanart"', restrict_sr="on") == ["Aiko Tanaka art"]
    assert "Aiko elsewhere" in await titles(q="aiko")


async def test_comments_more_and_morechildren(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    world = fake_reddit.world
    thread = world.add_post("Series", "Episode 1 Discussion")
    first = world.add_comment(thread["id"], "first")
    world.add_comment(thread["id"], "reply", parent=first)
    late = world.add_comment(thread["id"], "late")
    world.comment_page[thread["id"]] = 1
    _, _, body = await _get(reddit_http, fake_reddit, f"/comments/{thread['id']}", token)
    post_listing, comment_listing = body
    assert post_listing["data"]["children"][0]["data"]["id"] == thread["id"]
    kinds = [c["kind"] for c in comment_listing["data"]["children"]]
    assert kinds == ["t1", "more"]
    assert (
        comment_listing["data"]["children"][0]["data"]["replies"]["data"]["children"][0]["data"]["body"]
        == "reply"
    )
    assert comment_listing["data"]["children"][1]["data"]["children"] == [late["id"]]
    async with reddit_http.post(
        f"{fake_reddit.base_url}/api/morechildren",
        headers={"Authorization": f"bearer {token}"},
        data={"link_id": thread["name"], "children": late["id"], "api_type": "json"},
    ) as response:
        things = (await response.json())["json"]["data"]["things"]
    assert [t["data"]["body"] for t in things] == ["late"]


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_fail_next_then_recover(
    status: int,
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    fake_reddit.world.add_post("Sub", "p", url="https://i.redd.it/p.jpg")
    fake_reddit.fail_next(2, status)
    statuses = [(await _get(reddit_http, fake_reddit, "/r/Sub/new", token))[0] for _ in range(3)]
    assert statuses == [status, status, 200]
    assert [r.status for r in fake_reddit.api_requests("/r/Sub")] == statuses


async def test_timeout_holds_the_request(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    fake_reddit.fail_next(1, "timeout")
    with pytest.raises(TimeoutError):
        async with reddit_http.get(
            f"{fake_reddit.base_url}/r/Sub/new",
            headers={"Authorization": f"bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=0.3),
        ):
            pass
    assert fake_reddit.pending_failures == 0
    with pytest.raises(ValueError, match="status"):
        fake_reddit.fail_next(1, "slow")


async def test_unknown_subreddit_is_404(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
    token: str,
) -> None:
    assert (await _get(reddit_http, fake_reddit, "/r/Nowhere/new", token))[0] == 404


async def test_files_are_served_under_real_host_names(
    reddit_world: RedditWorld,
    reddit_http: aiohttp.ClientSession,
) -> None:
    image = next(i for i in reddit_world.expected.images if i.role == "image")
    async with reddit_http.get(image.url) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
        body = await response.read()
    import hashlib

    assert hashlib.sha256(body).hexdigest() == image.sha256
    missing = image.url.rsplit("/", 1)[0] + "/missing.jpg"
    async with reddit_http.get(missing) as response:
        assert response.status == 404


async def test_imgur_api_needs_a_client_id(
    fake_reddit: FakeReddit,
    reddit_http: aiohttp.ClientSession,
) -> None:
    url = fake_reddit.world.add_file("i.imgur.com", "/Abcde12.jpg", b"x")
    fake_reddit.world.add_album("Alb12345", [url])
    api = f"http://api.imgur.com:{fake_reddit.port}/3/album/Alb12345/images"
    async with reddit_http.get(api, headers={"Authorization": "Client-ID fake-imgur"}) as response:
        assert [i["link"] for i in (await response.json())["data"]] == [url]
    async with reddit_http.get(api) as response:
        assert response.status == 401


async def test_static_resolver_answers_only_its_hosts() -> None:
    resolver = StaticResolver({"i.redd.it": "127.0.0.1"})
    try:
        (answer,) = await resolver.resolve("I.REDD.IT", 8080)
        assert (answer["host"], answer["port"], answer["hostname"]) == ("127.0.0.1", 8080, "I.REDD.IT")
        fallback = await resolver.resolve("localhost", 80)
        assert any(a["host"] in ("127.0.0.1", "::1") for a in fallback)
    finally:
        await resolver.close()


def test_scripted_world_counts(reddit_world: RedditWorld) -> None:
    expected = reddit_world.expected
    first, *others = expected.characters
    assert len(expected.urls("subreddit", first)) == 12 + sum(
        1 for i in expected.images if i.role == "hostile"
    )
    for character in others:
        assert len(expected.urls("subreddit", character)) == 12
    for character in expected.characters:
        assert expected.distinct_images(character) == 10 + 3 + 3
        assert len(expected.urls("title_search", character)) == 3
        assert len(expected.urls("comment_links", character)) == 3
    assert len(expected.album_urls) == 2 * len(expected.characters)
