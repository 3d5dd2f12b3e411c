"""SSRF: no fetch reaches a private, loopback, link-local or metadata address, whether named
directly, through a redirect, or through a DNS name (hosts override) that resolves there.

The "allowed" server listens on 127.0.0.2 and is let through by an explicit exemption, so that
127.0.0.1 (where the "internal" server listens) stays a forbidden loopback address. Nothing here
sends a packet to 10.x or 169.254.x: those are refused before any connection is made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from catalog.settings import DownloadSettings
from media.fetch import FetchError, SafeFetcher, blocked_reason
from tests.media.test_fetch import PNG, LocalServer

ALLOWED_HOST = "127.0.0.2"
EXEMPT = (f"{ALLOWED_HOST}/32",)


class Servers:
    def __init__(self, allowed: LocalServer, internal: LocalServer) -> None:
        self.allowed = allowed
        self.internal = internal


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async def secret(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    internal = await LocalServer({"/secret.png": secret}, host="127.0.0.1").start()

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    allowed = await LocalServer({"/image.png": image, "/go": redirect}, host=ALLOWED_HOST).start()
    yield Servers(allowed, internal)
    await allowed.stop()
    await internal.stop()


def guarded(**overrides: object) -> DownloadSettings:
    values: dict[str, object] = {"retries": 0, "connect_timeout": 2.0, "read_timeout": 2.0}
    values.update(overrides)
    return DownloadSettings(**values)


async def expect_blocked(fetcher: SafeFetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)
    assert caught.value.reason == "blocked_address", caught.value
    return caught.value


async def test_exempt_test_server_is_reachable(servers: Servers) -> None:
    async with SafeFetcher(guarded(), max_bytes=1 << 20, exempt_networks=EXEMPT) as fetcher:
        got = await fetcher.fetch(servers.allowed.url("/image.png"))
    assert got.data == PNG


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
        "224.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[fe80::1]",
        "[fd00:ec2::254]",
        "[2002:7f00:1::]",
    ],
)
async def test_literal_addresses_are_refused(host: str) -> None:
    async with SafeFetcher(guarded(), max_bytes=1 << 20, exempt_networks=EXEMPT) as fetcher:
        error = await expect_blocked(fetcher, f"http://{host}:8080/latest/meta-data/")
    assert error.detail


async def test_loopback_server_is_not_reached_directly(servers: Servers) -> None:
    async with SafeFetcher(guarded(), max_bytes=1 << 20, exempt_networks=EXEMPT) as fetcher:
        await expect_blocked(fetcher, servers.internal.url("/secret.png"))
    assert servers.internal.hits == {}


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/admin",
        "http://[::1]:{port}/secret.png",
        "http://[::ffff:7f00:1]:{port}/secret.png",
        "http://localhost:{port}/secret.png",
    ],
)
async def test_redirect_into_private_space_is_refused(servers: Servers, target: str) -> None:
    location = target.format(port=servers.internal.port)
    async with SafeFetcher(guarded(), max_bytes=1 << 20, exempt_networks=EXEMPT) as fetcher:
        redirecting = servers.allowed.url("/go") + "?to=" + location
        await expect_blocked(fetcher, redirecting)
    assert servers.allowed.hits["/go"] == 1
    assert servers.internal.hits == {}


async def test_dns_names_resolving_to_private_space_are_refused(servers: Servers) -> None:
    hosts = {
        "images.example": ALLOWED_HOST,
        "rebind.example": "127.0.0.1",
        "metadata.example": "169.254.169.254",
        "intranet.example": "10.20.30.40",
        "v6.example": "::1",
        "mapped.example": "::ffff:127.0.0.1",
    }
    port = servers.internal.port
    async with SafeFetcher(guarded(hosts=hosts), max_bytes=1 << 20, exempt_networks=EXEMPT) as fetcher:
        ok = await fetcher.fetch(f"http://images.example:{servers.allowed.port}/image.png")
        assert ok.data == PNG
        for name in ("rebind", "metadata", "intranet", "v6", "mapped"):
            error = await expect_blocked(fetcher, f"http://{name}.example:{port}/secret.png")
            assert f"{name}.example" in error.detail
        # The system resolver too: localhost is a name that resolves to loopback.
        await expect_blocked(fetcher, f"http://localhost:{port}/secret.png")
        # A redirect to a name that resolves privately is caught at connect time.
        await expect_blocked(
            fetcher,
            f"http://images.example:{servers.allowed.port}/go?to=http://rebind.example:{port}/secret.png",
        )
    assert servers.internal.hits == {}


async def test_sandbox_switch_allows_private_addresses(servers: Servers) -> None:
    settings = guarded(allow_private_addresses=True, hosts={"i.redd.it": "127.0.0.1"})
    async with SafeFetcher(settings, max_bytes=1 << 20) as fetcher:
        direct = await fetcher.fetch(servers.internal.url("/secret.png"))
        by_name = await fetcher.fetch(f"http://i.redd.it:{servers.internal.port}/secret.png")
        redirected = await fetcher.fetch(
            servers.allowed.url("/go") + "?to=" + servers.internal.url("/secret.png")
        )
    assert direct.data == by_name.data == redirected.data == PNG
    assert servers.internal.hits["/secret.png"] == 3


def test_address_policy_table() -> None:
    public = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"]
    private = [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.251",
        "240.0.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",  # 6to4 wrapping 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ]
    for text in public:
        assert blocked_reason(ipaddress.ip_address(text)) is None, text
    for text in private:
        assert blocked_reason(ipaddress.ip_address(text)) is not None, text
