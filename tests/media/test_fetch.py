"""SafeFetcher against real HTTP servers on loopback: caps, sniffing, retries, redirects, timeouts."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from PIL import Image as PILImage

from catalog.settings import DownloadSettings
from media.fetch import FetchError, SafeFetcher
from media.retry import parse_retry_after

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def png_bytes(size: int = 48, colour: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class LocalServer:
    """An aiohttp server on a loopback address; `hits` counts requests per path, `calls` is what
    the handlers count for themselves."""

    def __init__(self, routes: dict[str, Handler], host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.app = web.Application()
        for path, handler in routes.items():
            self.app.router.add_get(path, self._counted(path, handler))
        self.runner = web.AppRunner(self.app)
        self.port = 0

    def _counted(self, path: str, handler: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            self.hits[path] = self.hits.get(path, 0) + 1
            return await handler(request)

        return wrapper

    async def start(self) -> LocalServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS picked
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"


def fast_settings(**overrides: object) -> DownloadSettings:
    values: dict[str, object] = {
        "retries": 3,
        "backoff_base": 0.01,
        "backoff_max": 2.0,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "allow_private_addresses": True,
    }
    values.update(overrides)
    return DownloadSettings(**values)


PNG = png_bytes()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    release = asyncio.Event()
    calls: dict[str, int] = {"flaky": 0, "endless_bytes": 0}

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def png_called_html(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="text/html")

    async def html_called_jpeg(_: web.Request) -> web.Response:
        return web.Response(body=b"<!doctype html><html>" + b"x" * 200, content_type="image/jpeg")

    async def endless(request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: only a cap enforced while reading can stop it.
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(PNG[:64])
        for _ in range(2000):
            await response.write(b"\0" * 65536)
            calls["endless_bytes"] += 65536
        return response

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10**9
        await response.prepare(request)
        await response.write(PNG)
        return response

    async def rate_limited_then_ok(_: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if calls["flaky"] == 2:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(body=PNG, content_type="image/png")

    async def always_503(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def not_found(_: web.Request) -> web.Response:
        return web.Response(status=404)

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(PNG[:10])
        await release.wait()
        return response

    async def hop(request: web.Request) -> web.Response:
        remaining = int(request.match_info["n"])
        target = "/image.png" if remaining == 0 else f"/hop/{remaining - 1}"
        raise web.HTTPFound(target)

    routes: dict[str, Handler] = {
        "/image.png": image,
        "/png-called-html": png_called_html,
        "/html-called-jpeg": html_called_jpeg,
        "/endless": endless,
        "/declared-huge": declared_huge,
        "/flaky": rate_limited_then_ok,
        "/down": always_503,
        "/missing": not_found,
        "/stalls": stalls,
        "/hop/{n}": hop,
    }
    running = await LocalServer(routes).start()
    running.calls = calls
    yield running
    release.set()
    await running.stop()


async def test_fetches_image_bytes(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20) as fetcher:
        got = await fetcher.fetch(server.url("/image.png"))
    assert got.data == PNG
    assert got.format == "png"
    assert got.final_url == got.url == server.url("/image.png")


async def test_size_cap_is_enforced_while_reading_without_content_length(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=256 * 1024) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/endless"))
    assert caught.value.reason == "too_large"
    assert "256" in caught.value.detail or str(256 * 1024) in caught.value.detail
    # Stopped early: the server got no further than the cap plus what the sockets buffer.
    assert server.calls["endless_bytes"] < 32 * 1024 * 1024


async def test_declared_length_over_cap_is_refused_before_reading(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/declared-huge"))
    assert caught.value.reason == "too_large"
    assert "Content-Length" in caught.value.detail


async def test_type_comes_from_magic_bytes_not_content_type(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20) as fetcher:
        got = await fetcher.fetch(server.url("/png-called-html"))
        assert got.format == "png"
        assert got.content_type is not None and got.content_type.startswith("text/html")
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/html-called-jpeg"))
        assert caught.value.reason == "not_an_image"
        html = await fetcher.fetch(server.url("/html-called-jpeg"), sniff=False)
        assert html.data.startswith(b"<!doctype html>")


def waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the retry policy chose, from its log lines ("retrying ... in 1.00 s after ...")."""
    return [
        float(r.getMessage().split(" in ")[1].split(" s ")[0])
        for r in caplog.records
        if r.name == "media.retry"
    ]


async def test_retries_429_and_503_honouring_retry_after(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="media.retry")
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20) as fetcher:
        got = await fetcher.fetch(server.url("/flaky"))
    assert got.data == PNG
    assert server.hits["/flaky"] == 3
    assert waits(caplog) == [1.0, 0.0], "the server's Retry-After (1 s, then 0 s) decides the wait"


async def test_retry_after_is_bounded_by_backoff_max(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="media.retry")
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    release = asyncio.Event()

    async def slow_down(_: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3600"})

    running = await LocalServer({"/slow": slow_down}).start()
    try:
        settings = fast_settings(retries=1, backoff_max=0.2)
        async with SafeFetcher(settings, max_bytes=1 << 20) as fetcher:
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch(running.url("/slow"))
    finally:
        release.set()
        await running.stop()
    assert caught.value.reason == "http_429"
    assert caught.value.transient
    assert running.hits["/slow"] == 2
    assert waits(caplog) == [0.2], "Retry-After: 3600 is cut to backoff_max"


async def test_gives_up_after_configured_retries(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(retries=2), max_bytes=1 << 20) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/down"))
        assert caught.value.reason == "http_503"
        assert server.hits["/down"] == 3
        with pytest.raises(FetchError) as missing:
            await fetcher.fetch(server.url("/missing"))
    assert missing.value.reason == "http_404"
    assert not missing.value.transient
    assert server.hits["/missing"] == 1  # a 404 is a verdict, not retried


async def test_redirects_are_followed_up_to_the_limit(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(max_redirects=3), max_bytes=1 << 20) as fetcher:
        got = await fetcher.fetch(server.url("/hop/2"))  # hop/2 -> hop/1 -> hop/0 -> image
        assert got.data == PNG
        assert got.final_url == server.url("/image.png")
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/hop/3"))  # four redirects
    assert caught.value.reason == "too_many_redirects"


async def test_read_timeout(server: LocalServer) -> None:
    settings = fast_settings(read_timeout=0.3, retries=0)
    async with SafeFetcher(settings, max_bytes=1 << 20) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/stalls"))
    assert caught.value.reason == "timeout"
    assert caught.value.transient


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "gopher://127.0.0.1:70/",
        "http:///nohost",
        "not a url",
    ],
)
async def test_only_http_urls_with_a_host(url: str) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(url)
    assert caught.value.reason == "bad_url"


async def test_allowed_hosts_list(server: LocalServer) -> None:
    async with SafeFetcher(fast_settings(), max_bytes=1 << 20, allowed_hosts={"cdn.example"}) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(server.url("/image.png"))
    assert caught.value.reason == "host_not_allowed"
    settings = fast_settings(hosts={"cdn.example": "127.0.0.1"})
    async with SafeFetcher(settings, max_bytes=1 << 20, allowed_hosts={"cdn.example"}) as fetcher:
        got = await fetcher.fetch(server.url("/image.png", host="cdn.example"))
    assert got.data == PNG


async def test_concurrency_is_bounded_per_host() -> None:
    in_flight = 0
    peak = 0
    gate = asyncio.Event()
    arrived = asyncio.Condition()

    async def held(_: web.Request) -> web.Response:
        nonlocal in_flight, peak
        async with arrived:
            in_flight += 1
            peak = max(peak, in_flight)
            arrived.notify_all()
        await gate.wait()
        in_flight -= 1
        return web.Response(body=PNG)

    running = await LocalServer({"/held/{n}": held}).start()
    try:
        settings = fast_settings(concurrency=8, per_host=2)
        async with SafeFetcher(settings, max_bytes=1 << 20) as fetcher:
            tasks = [asyncio.create_task(fetcher.fetch(running.url(f"/held/{n}"))) for n in range(6)]
            async with arrived:
                await asyncio.wait_for(arrived.wait_for(lambda: in_flight >= 2), 5)
            # Let the event loop run the other tasks' connection attempts: they must queue.
            for _ in range(50):
                await asyncio.sleep(0)
            assert in_flight == 2
            gate.set()
            results = await asyncio.gather(*tasks)
    finally:
        gate.set()
        await running.stop()
    assert peak == 2
    assert all(r.data == PNG for r in results)
