"""An aiohttp fake of Reddit's API (and imgur's), on 127.0.0.1, that the real asyncpraw talks to.

One port serves everything; the Host header decides what a request is for:
- 127.0.0.1: Reddit's API as asyncpraw calls it through `oauth_url`/`reddit_url`/`short_url`:
  /api/v1/access_token (client_credentials and password grants), /r/{sub}/{new,hot,top},
  /r/{sub}/search, /comments/{id}, /api/morechildren, /api/info.
- i.redd.it, preview.redd.it, external-preview.redd.it, i.imgur.com, imgur.com, ...: the files a
  test stored under those real host names (clients map the names to 127.0.0.1 themselves).
- api.imgur.com: /3/album/{id}/images, with `Authorization: Client-ID ...`.

Knobs: `fail_next(n, status=429|500|503|"timeout")` fails the next n API calls, `ratelimit_*`
shape the x-ratelimit-* headers, and `requests` logs every request.

The listing, search and comment answers come from listings.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from sandbox.reddit.listings import ListingRoutes, _listing_json, _thing
from sandbox.reddit.world import SERVED_HOSTS, World, escape_reddit

API_HOSTS = ("127.0.0.1", "localhost")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    host: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class Failure:
    status: int | str  # an HTTP status, or "timeout": hold the request until the client gives up
    path_prefix: str | None = None
    query_has: str | None = None  # only requests with this query parameter (e.g. "after")
    retry_after: str | None = None  # a Retry-After header on the failure

    def matches(self, path: str, query: Any) -> bool:
        return (self.path_prefix is None or path.startswith(self.path_prefix)) and (
            self.query_has is None or self.query_has in query
        )


@dataclass
class RateLimit:
    budget: int = 1000  # requests per window, like Reddit's 1000 per 10 minutes for OAuth clients
    reset: int = 1  # seconds to the window's end; small keeps asyncpraw from pacing tests
    headers_on_429: bool = False  # Reddit sends remaining=0 on a 429; asyncpraw then sleeps >= 1 s
    used: int = 0


@dataclass
class FakeReddit(ListingRoutes):
    """`await fake.start()`, script `fake.world`, point asyncpraw at `fake.base_url`."""

    hang_seconds: float = 60.0
    world: World = field(init=False)
    requests: list[LoggedRequest] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> grant type
    ratelimit: RateLimit = field(default_factory=RateLimit)
    _failures: deque[Failure] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event | None = None
    port: int = 0

    async def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.world = World(port=self.port)
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._dispatch])
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hosts(self) -> dict[str, str]:
        """Static DNS overrides (DownloadSettings.hosts) for every image host the fake serves."""
        return self.world.hosts

    def reddit_kwargs(self) -> dict[str, str]:
        """asyncpraw.Reddit keyword arguments that point it here."""
        return {"oauth_url": self.base_url, "reddit_url": self.base_url, "short_url": self.base_url}

    def fail_next(
        self,
        n: int,
        status: int | str = 429,
        *,
        path_prefix: str | None = None,
        query_has: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Fail the next `n` Reddit API calls (the token endpoint excepted) with `status`, or hold
        them unanswered with status="timeout". `path_prefix` and `query_has` (a query parameter
        the request must carry, such as "after" for a listing's later pages) limit which count;
        `retry_after` is sent as the Retry-After header."""
        if status != "timeout" and not isinstance(status, int):
            raise ValueError(f"status must be an HTTP status or 'timeout', not {status!r}")
        self._failures.extend(Failure(status, path_prefix, query_has, retry_after) for _ in range(n))

    @property
    def pending_failures(self) -> int:
        return len(self._failures)

    def api_requests(self, path_prefix: str = "/") -> list[LoggedRequest]:
        return [r for r in self.requests if r.host in API_HOSTS and r.path.startswith(path_prefix)]

    # ---- dispatch ------------------------------------------------------------------------------
    @web.middleware
    async def _dispatch(self, request: web.Request, handler: Any) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower()
        try:
            if host in API_HOSTS:
                response = await self._api(request)
            elif host == "api.imgur.com":
                response = self._imgur_api(request)
            elif host in SERVED_HOSTS:
                response = self._file(host, request)
            else:
                response = web.Response(status=404, text=f"unknown host {host}")
        except web.HTTPException as exc:
            response = exc
        self.requests.append(
            LoggedRequest(request.method, host, request.path, dict(request.query), response.status)
        )
        return response

    async def _not_found(self, request: web.Request) -> web.Response:  # pragma: no cover
        return web.Response(status=404)

    def _file(self, host: str, request: web.Request) -> web.Response:
        stored = self.world.files.get((host, request.path))
        if stored is None or request.method not in ("GET", "HEAD"):
            return web.Response(status=404, text="no such file")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type})

    def _imgur_api(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Client-ID ") or auth[len("Client-ID ") :] not in self.world.imgur_client_ids:
            return _json({"data": {"error": "Authentication required"}, "success": False, "status": 401}, 401)
        parts = [p for p in request.path.split("/") if p]
        if len(parts) == 4 and parts[:2] == ["3", "album"] and parts[3] == "images":
            album = self.world.albums.get(parts[2])
            if album is None:
                return _json(
                    {"data": {"error": "Unable to find album"}, "success": False, "status": 404}, 404
                )
            data = [
                {
                    "id": url.rsplit("/", 1)[-1].split(".")[0],
                    "link": url,
                    "type": "image/jpeg",
                    "animated": False,
                }
                for url in album
            ]
            return _json({"data": data, "success": True, "status": 200})
        return _json({"data": {"error": "not found"}, "success": False, "status": 404}, 404)

    # ---- Reddit's API --------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        if path == "/api/v1/access_token" and request.method == "POST":
            return await self._token(request)
        failure = self._take_failure(path, request.query)
        if failure is not None:
            return await self._fail(failure)
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or auth[len("bearer ") :] not in self.tokens:
            return self._with_ratelimit(_json({"message": "Unauthorized", "error": 401}, 401))
        raw = request.query.get("raw_json") == "1"
        parts = [p for p in path.split("/") if p]
        if (
            request.method == "GET"
            and len(parts) == 3
            and parts[0] == "r"
            and parts[2] in ("new", "hot", "top")
        ):
            body: Any = self._listing(self._sorted(parts[1], parts[2], request.query), request.query)
        elif request.method == "GET" and len(parts) == 3 and parts[0] == "r" and parts[2] == "search":
            body = self._listing(self._search(parts[1], request.query), request.query)
        elif request.method == "GET" and len(parts) >= 2 and parts[0] == "comments":
            body = self._comments(parts[1], request.query)
        elif request.method == "POST" and path == "/api/morechildren":
            body = self._morechildren(await request.post())
        elif request.method == "GET" and path == "/api/info":
            ids = request.query.get("id", "").split(",")
            posts = [
                self.world.posts[i[3:]] for i in ids if i.startswith("t3_") and i[3:] in self.world.posts
            ]
            body = _listing_json([_thing("t3", p) for p in posts], None, None)
        else:
            return self._with_ratelimit(_json({"message": "Not Found", "error": 404}, 404))
        if body is None:
            return self._with_ratelimit(_json({"message": "Not Found", "error": 404}, 404))
        return self._with_ratelimit(_json(body if raw else escape_reddit(body)))

    def _take_failure(self, path: str, query: Any) -> Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.matches(path, query):
                del self._failures[index]
                return failure
        return None

    async def _fail(self, failure: Failure) -> web.Response:
        if failure.status == "timeout":
            assert self._closing is not None
            # Hold the request unanswered; the client's timeout ends it (or the fake stopping).
            try:
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
            except TimeoutError:
                pass
            return web.Response(status=504, text="gateway timeout")
        status = int(failure.status)
        response = _json(
            {"message": "Too Many Requests" if status == 429 else "Server Error", "error": status}, status
        )
        if failure.retry_after is not None:
            response.headers["Retry-After"] = failure.retry_after
        if status != 429 or self.ratelimit.headers_on_429:
            return self._with_ratelimit(response, exhausted=status == 429)
        return response

    def _with_ratelimit(self, response: web.Response, *, exhausted: bool = False) -> web.Response:
        limit = self.ratelimit
        limit.used += 1
        remaining = 0 if exhausted else max(0, limit.budget - limit.used)
        response.headers["x-ratelimit-remaining"] = f"{float(remaining):.1f}"
        response.headers["x-ratelimit-used"] = str(limit.used)
        response.headers["x-ratelimit-reset"] = str(limit.reset)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        client = _basic_auth(request.headers.get("Authorization", ""))
        if client is None or self.world.clients.get(client[0]) != client[1]:
            return _json({"message": "Unauthorized", "error": 401}, 401)
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        if grant == "password":
            username, password = str(form.get("username", "")), str(form.get("password", ""))
            if self.world.users.get(username) != password:
                return _json({"error": "invalid_grant"})  # Reddit answers 200 with an error
        elif grant != "client_credentials":
            return _json({"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(16)
        self.tokens[token] = grant
        return _json({"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": JSON_TYPE})


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
