"""Talking to Reddit for a scan: the asyncpraw client from the settings, requests that survive 429,
5xx and timeouts, listings page by page, what a scan returns (`ScanResult`) and how it stops
(`ScanAborted` for one source, `RedditUnavailable` for the whole run).

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

import os
from collections.abc import AsyncIterator, Awaitable, Callable
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
from catalog.settings import secret_value
from catalog.settings_sections import RedditSettings
from media.retry import RetryBudget, RetryLater, RetryPolicy, parse_retry_after
from scraper.candidates import ImageCandidate

T = TypeVar("T")

MAX_TRIES = 6  # failures in a row on one request before a scan gives up
MAX_BACKOFF_FACTOR = 32  # the longest wait is rate_limit_backoff * 32
PAGE_LIMIT = 100  # Reddit's largest page


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


class RedditCalls:
    """Requests of one scan: each retried under the scan's policy, all within the run's budget."""

    reddit: asyncpraw.Reddit
    budget: RetryBudget
    limit: int
    retry_policy: RetryPolicy
    last_failure: str
    result: ScanResult

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
