"""SSRF-safe HTTP downloads shared by the scraper and the bot.

Every hop of every request is checked: the URL's scheme and host, the addresses its name
resolves to (at connect time, so a name cannot change its answer between the check and the
connection) and each redirect target. Private, loopback, link-local, cloud-metadata, multicast
and reserved addresses are refused unless `allow_private_addresses` is on (the offline sandbox).
Bodies are read under a byte cap whatever Content-Length claims, and the type is sniffed from
the first bytes rather than trusted from Content-Type.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from catalog.settings import DownloadSettings
from media.retry import RetryLater, RetryPolicy, parse_retry_after
from media.sniff import sniff_format

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SNIFF_BYTES = 512  # enough for an ISO-BMFF ftyp box (AVIF)
ALLOWED_SCHEMES = frozenset({"http", "https"})
# Addresses that `is_global` does not already rule out but that no image host lives on.
EXTRA_BLOCKED_NETWORKS = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT; Alibaba's metadata service
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("fd00:ec2::/32"),  # AWS's IPv6 metadata service
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A download that did not give image bytes. `reason` is a short stable code
    ("blocked_address", "too_large", "timeout", "http_404", ...), `detail` a sentence."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Worth trying again on a later run (the host may recover), as opposed to a verdict."""
        if self.reason in {"timeout", "connection", "http_429"}:
            return True
        return self.reason.startswith("http_5")


@dataclass(frozen=True)
class FetchedBytes:
    url: str
    final_url: str
    data: bytes
    content_type: str | None
    format: str | None = None  # what the magic bytes say, when sniffed


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = blocked_reason(mapped)
            return f"{inner} (inside {address})" if inner else None
        if address.teredo is not None:
            return "a Teredo tunnel address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_private, "a private address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_reserved, "a reserved address"),
        (any(address in net for net in EXTRA_BLOCKED_NETWORKS), "a non-public address"),
        (not address.is_global, "a non-public address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


class GuardedResolver(AbstractResolver):
    """Resolves through static overrides (`DownloadSettings.hosts`) or the system resolver, then
    refuses the whole answer if any address is blocked: a name that points anywhere private is
    treated as hostile rather than tried address by address."""

    def __init__(
        self,
        overrides: dict[str, str],
        *,
        allow_private: bool,
        exempt: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
    ) -> None:
        self._overrides = {host.lower().rstrip("."): ip for host, ip in overrides.items()}
        self._allow_private = allow_private
        self._exempt = exempt
        self._system = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        override = self._overrides.get(host.lower().rstrip("."))
        if override is not None:
            address = ipaddress.ip_address(override)
            results: list[ResolveResult] = [
                {
                    "hostname": host,
                    "host": str(address),
                    "port": port,
                    "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]
        else:
            results = await self._system.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                address = ipaddress.ip_address(result["host"].split("%")[0])
                reason = blocked_reason(address)
                if reason and not any(address in net for net in self._exempt):
                    raise BlockedAddressError(f"{host} resolves to {result['host']}, {reason}")
        return results

    async def close(self) -> None:
        await self._system.close()


class BlockedAddressError(OSError):
    """Raised inside the connector; an OSError so that aiohttp wraps it as a connection error."""


class SafeFetcher:
    """An async context manager owning one aiohttp session with a guarded resolver.

    `allowed_hosts`, when given, is an allow-list of host names (the bot's attachment CDNs);
    the address checks apply on top of it.
    """

    def __init__(
        self,
        settings: DownloadSettings,
        *,
        max_bytes: int,
        allowed_hosts: set[str] | None = None,
        exempt_networks: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        # Explicit holes in the address policy (a mirror on a private network, a test server on
        # 127.0.0.2); everything else private stays refused.
        self.exempt_networks = tuple(ipaddress.ip_network(n) for n in exempt_networks)
        self.max_bytes = max_bytes
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None
        self._session: aiohttp.ClientSession | None = None
        # 429, 5xx and dropped connections are retried; the server's Retry-After is honoured.
        self.retry_policy = RetryPolicy(
            tries=settings.retries + 1, base=settings.backoff_base, cap=settings.backoff_max
        )

    async def __aenter__(self) -> Self:
        resolver = GuardedResolver(
            self.settings.hosts,
            allow_private=self.settings.allow_private_addresses,
            exempt=self.exempt_networks,
        )
        connector = aiohttp.TCPConnector(
            limit=self.settings.concurrency,
            limit_per_host=self.settings.per_host,
            resolver=resolver,
            ttl_dns_cache=60,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.read_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"User-Agent": self.settings.user_agent},
            trust_env=False,  # an environment proxy would bypass the address checks
            auto_decompress=False,  # the byte cap counts what the server sends, not an inflated body
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("SafeFetcher is used outside `async with`")
        return self._session

    def check_url(self, url: URL) -> None:
        """Refuse a URL before any connection: wrong scheme, no host, a host off the allow-list
        or a literal blocked address (aiohttp does not call the resolver for those)."""
        if url.scheme not in ALLOWED_SCHEMES:
            raise FetchError("bad_url", f"{url.scheme or 'no'} scheme in {_short(url)}")
        host = (url.host or "").lower().rstrip(".")
        if not host:
            raise FetchError("bad_url", f"no host in {_short(url)}")
        if url.user or url.password:
            raise FetchError("bad_url", "credentials in the URL")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            raise FetchError("host_not_allowed", f"{host} is not an allowed host")
        try:
            literal = ipaddress.ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            return
        if not self.settings.allow_private_addresses:
            reason = blocked_reason(literal)
            if reason and not any(literal in net for net in self.exempt_networks):
                raise FetchError("blocked_address", f"{literal} is {reason}")

    async def fetch(self, url: str, *, sniff: bool = True, max_bytes: int | None = None) -> FetchedBytes:
        """GET `url` following at most `max_redirects` redirects, retrying 429 and 5xx answers
        and transient connection failures with exponential backoff and jitter."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        try:
            current = URL(url)
        except (ValueError, TypeError) as exc:
            raise FetchError("bad_url", str(exc)) from exc
        try:
            async for attempt in self.retry_policy.asynchronous(_short(current)):
                with attempt:
                    return await self._follow(url, current, sniff=sniff, limit=limit)
        except RetryLater as retry:
            raise retry.error from None
        raise AssertionError("unreachable")  # the policy returns or raises

    async def _follow(self, original: str, url: URL, *, sniff: bool, limit: int) -> FetchedBytes:
        for _hop in range(self.settings.max_redirects + 1):
            self.check_url(url)
            try:
                async with self.session.get(url, allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError("bad_redirect", f"{response.status} without Location")
                        try:
                            url = url.join(URL(location))
                        except ValueError as exc:
                            raise FetchError("bad_redirect", str(exc)) from exc
                        continue
                    if response.status in RETRY_STATUSES:
                        raise RetryLater(
                            FetchError(f"http_{response.status}", _short(url)),
                            parse_retry_after(response.headers.get("Retry-After")),
                        )
                    if response.status != 200:
                        raise FetchError(f"http_{response.status}", _short(url))
                    data, detected = await self._read_capped(response, sniff=sniff, limit=limit)
                    return FetchedBytes(
                        url=original,
                        final_url=str(url),
                        data=data,
                        content_type=response.headers.get("Content-Type"),
                        format=detected,
                    )
            except FetchError:
                raise
            except aiohttp.ClientConnectorError as exc:
                blocked = _blocked_cause(exc)
                if blocked is not None:
                    raise FetchError("blocked_address", str(blocked)) from None
                raise RetryLater(FetchError("connection", f"{url.host}: {exc.os_error}"), None) from None
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise RetryLater(
                    FetchError("timeout", f"{_short(url)} ({type(exc).__name__})"), None
                ) from None
            except aiohttp.InvalidURL as exc:
                raise FetchError("bad_url", str(exc)) from None
            except aiohttp.ClientPayloadError as exc:
                raise RetryLater(FetchError("connection", f"truncated body: {exc}"), None) from None
            except aiohttp.ClientError as exc:
                raise RetryLater(FetchError("connection", f"{type(exc).__name__}: {exc}"), None) from None
        raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} from {original}")

    async def _read_capped(
        self, response: aiohttp.ClientResponse, *, sniff: bool, limit: int
    ) -> tuple[bytes, str | None]:
        declared = response.content_length
        if declared is not None and declared > limit:
            raise FetchError("too_large", f"Content-Length {declared} exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        detected: str | None = None
        sniffed = not sniff
        deadline = time.monotonic() + self.settings.read_timeout * 4
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise FetchError("too_large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
            if not sniffed and size >= SNIFF_BYTES:
                detected = self._sniff(b"".join(chunks)[:SNIFF_BYTES], response)
                sniffed = True
            # sock_read bounds each read; this bounds a server that drips bytes forever.
            if time.monotonic() > deadline:
                raise TimeoutError("body took too long")
        data = b"".join(chunks)
        if not sniffed:
            detected = self._sniff(data[:SNIFF_BYTES], response)
        return data, detected

    @staticmethod
    def _sniff(head: bytes, response: aiohttp.ClientResponse) -> str:
        detected = sniff_format(head)
        if detected is None:
            claimed = response.headers.get("Content-Type", "no Content-Type")
            raise FetchError("not_an_image", f"the first bytes are no image format (server said {claimed})")
        return detected


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BlockedAddressError):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, BlockedAddressError):
            return os_error
        seen = seen.__cause__ or seen.__context__
    return None


def _short(url: URL) -> str:
    """A URL for messages: without query string, which may carry tokens (Discord's CDN signs)."""
    return str(url.with_query(None).with_fragment(None))[:200]
