"""JSON responses the way Discord sends them, API errors, request bodies, rate-limit buckets."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.discord.entities import StoredFile


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses a body as JSON only when Content-Type is exactly application/json.
    merged = {"Content-Type": "application/json"} | (headers or {})
    return web.Response(body=json.dumps(data).encode(), status=status, headers=merged)


class ApiError(Exception):
    """An error Discord would answer with: HTTP status, JSON error code, message, field errors."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return json_response(body, self.status)


def unknown(what: str, code: int) -> ApiError:
    return ApiError(404, code, f"Unknown {what}")


def form_error(field_path: str, code: str, message: str) -> ApiError:
    """Discord's 50035 'Invalid Form Body' with the nested `errors` object for one field
    ("embeds.0.description"; "" for the body itself)."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(field_path.split(".") if field_path else []):
        errors = {part: errors}
    return ApiError(400, 50035, "Invalid Form Body", errors)


async def read_body(request: web.Request) -> tuple[dict[str, Any], list[StoredFile]]:
    """A JSON body, or multipart with payload_json plus files[n] parts."""
    if request.content_type == "multipart/form-data":
        payload: dict[str, Any] = {}
        files: list[StoredFile] = []
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                payload = json.loads(data)
            elif part.name and part.name.startswith("files["):
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files.append(StoredFile(part.filename or "file", bytes(data), content_type))
        return payload, files
    raw = await request.read()
    if not raw:
        return {}, []
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    return (body if isinstance(body, dict) else {"_list": body}), []


@dataclass
class Bucket:
    started: float
    used: int


class RateLimiter:
    """Fixed-window buckets per route and major parameter, with Discord's headers."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._buckets: dict[str, Bucket] = {}

    def take(self, route_key: str, major: str) -> tuple[dict[str, str], float | None]:
        """Headers for this request, and retry_after when the bucket is exhausted."""
        now = time.monotonic()
        key = f"{route_key}:{major}"
        bucket = self._buckets.get(key)
        if bucket is None or now - bucket.started >= self.window:
            bucket = self._buckets[key] = Bucket(now, 0)
        reset_after = max(0.0, self.window - (now - bucket.started))
        retry_after = None
        if bucket.used >= self.limit:
            retry_after = reset_after
        else:
            bucket.used += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - bucket.used)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{math.ceil(reset_after * 1000) / 1000:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(route_key.encode()).hexdigest()[:32],
        }
        return headers, retry_after


def too_many_requests(retry_after: float, *, is_global: bool, headers: dict[str, str]) -> web.Response:
    # discord.py treats a 429 without a Via header as a Cloudflare ban, so send one like Discord does.
    extra = headers | {
        "Retry-After": str(math.ceil(retry_after)),
        "Via": "1.1 google",
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        extra["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    return json_response(body, 429, extra)
