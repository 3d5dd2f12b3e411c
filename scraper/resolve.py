"""From a Reddit post or a plain link to the direct image URLs behind it.

Hosts are matched by name only, never by scheme or port, so the sandbox's
`http://i.redd.it:PORT/x.jpg` resolves exactly like `https://i.redd.it/x.jpg`; rewritten URLs keep
the input's scheme and port.

Choices, written down:
- `.gifv` and `.mp4` (imgur or anywhere) are videos and skipped, like Reddit videos: a gifv is an
  mp4 in an HTML wrapper, and the pipeline samples stills from GIFs, not from video.
- `.gif` is an image (the pipeline samples a few frames).
- an imgur page `imgur.com/ID` is `i.imgur.com/ID.jpg` (imgur serves any format under .jpg).
- imgur albums and galleries need imgur's API; without `imgur_client_id` they are skipped with the
  reason `imgur_album_no_client_id`.
- any other http(s) URL whose path ends in an image extension is taken as a direct image: the
  downloader validates the bytes and refuses private addresses.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import aiohttp

from catalog.settings import secret_value
from catalog.settings_sections import RedditSettings

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp"})
VIDEO_EXTENSIONS = frozenset({"gifv", "mp4", "webm", "mov", "m4v", "mkv", "avi"})
VIDEO_HOSTS = frozenset(
    {"v.redd.it", "youtube.com", "youtu.be", "streamable.com", "gfycat.com", "redgifs.com"}
)
REDDIT_HOSTS = frozenset({"reddit.com", "old.reddit.com", "new.reddit.com", "np.reddit.com", "redd.it"})
PREVIEW_HOSTS = frozenset({"preview.redd.it", "external-preview.redd.it"})
IMGUR_ID = re.compile(r"^[A-Za-z0-9]{5,10}$")
MAX_URL_CHARS = 2048
CROSSPOST_DEPTH = 3
IMGUR_TIMEOUT = aiohttp.ClientTimeout(total=20)


class SkipReason:
    """Why a post or link gave no image; ScanResult.skipped counts these."""

    video = "video"
    removed = "removed"
    nsfw = "nsfw"
    not_image = "not_image"
    bad_url = "bad_url"
    self_post = "self_post"
    gallery_empty = "gallery_empty"
    reddit_link = "reddit_link"
    imgur_album_no_client_id = "imgur_album_no_client_id"
    imgur_api_error = "imgur_api_error"
    no_name_match = "no_name_match"
    flair_mismatch = "flair_mismatch"
    seen = "seen"


@dataclass(frozen=True)
class Resolved:
    """Direct image URLs (gallery order), or an empty tuple and the reason why not.

    `album` is set when the URL is an imgur album or gallery: only its API can list the images.
    `gallery_indexes` parallels `urls` for Reddit galleries (position in gallery_data).
    """

    urls: tuple[str, ...] = ()
    skip: str | None = None
    album: str | None = None
    gallery_indexes: tuple[int, ...] | None = None
    skipped_items: int = 0
    detail: str | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return bool(self.urls)


def _skip(reason: str, detail: str | None = None) -> Resolved:
    return Resolved(skip=reason, detail=detail)


def _direct(url: str) -> Resolved:
    return Resolved(urls=(url,))


def host_of(url: str) -> str | None:
    """The lower-cased host name without `www.`/`m.`, or None for anything that is not http(s)."""
    parts = _split(url)
    return _bare_host(parts) if parts is not None else None


def _split(url: str) -> SplitResult | None:
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts


def _bare_host(parts: SplitResult) -> str:
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in ("www.", "m."):
        host = host.removeprefix(prefix)
    return host


def _extension(path: str) -> str:
    last = path.rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[-1].lower() if "." in last else ""


def _with_host(parts: SplitResult, host: str, path: str) -> str:
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{host}{port}{path}"


def resolve_url(url: str) -> Resolved:
    """Classify one link without any network access. Never raises: a link it cannot use comes
    back with `skip` set (`bad_url`, `video`, `not_image`, `reddit_link`) or with `album` set."""
    parts = _split(url)
    if parts is None:
        return _skip(SkipReason.bad_url)
    host = _bare_host(parts)
    ext = _extension(parts.path)

    if host in VIDEO_HOSTS or ext in VIDEO_EXTENSIONS:
        return _skip(SkipReason.video)
    if host in PREVIEW_HOSTS:
        if "format=mp4" in parts.query:
            return _skip(SkipReason.video)
        return _direct(html.unescape(url)) if ext in IMAGE_EXTENSIONS else _skip(SkipReason.not_image)
    if host == "i.redd.it":
        return _direct(url) if ext in IMAGE_EXTENSIONS else _skip(SkipReason.not_image)
    if host in ("i.imgur.com", "imgur.com"):
        return _resolve_imgur(parts, host, ext, url)
    if host in REDDIT_HOSTS or host.endswith(".reddit.com"):
        # A gallery or a post link: the post itself must be fetched to know the images.
        return _skip(SkipReason.reddit_link)
    if ext in IMAGE_EXTENSIONS:
        return _direct(url)
    return _skip(SkipReason.not_image)


def _resolve_imgur(parts: SplitResult, host: str, ext: str, url: str) -> Resolved:
    segments = [s for s in parts.path.split("/") if s]
    if host == "i.imgur.com":
        if len(segments) == 1 and ext in IMAGE_EXTENSIONS:
            return _direct(url)
        if len(segments) == 1 and not ext and IMGUR_ID.match(segments[0]):
            return _direct(_with_host(parts, "i.imgur.com", f"/{segments[0]}.jpg"))
        return _skip(SkipReason.not_image)
    if len(segments) == 2 and segments[0] in ("a", "gallery"):
        # New-style slugs end in the id: /a/some-title-AbC12
        album = segments[1].rsplit("-", 1)[-1]
        if IMGUR_ID.match(album):
            return Resolved(album=album, skip=SkipReason.imgur_album_no_client_id)
        return _skip(SkipReason.not_image)
    if len(segments) == 3 and segments[0] == "r":
        segments = segments[2:]  # imgur.com/r/<subreddit>/<id>
    if len(segments) == 1:
        stem, _, _ = segments[0].partition(".")
        if IMGUR_ID.match(stem) and (ext in IMAGE_EXTENSIONS or not ext):
            suffix = ext if ext else "jpg"
            return _direct(_with_host(parts, "i.imgur.com", f"/{stem}.{suffix}"))
    return _skip(SkipReason.not_image)


async def resolve_link(url: str, http: aiohttp.ClientSession, settings: RedditSettings) -> Resolved:
    """`resolve_url`, plus imgur albums listed through imgur's API when a client id is set."""
    resolved = resolve_url(url)
    if resolved.album is None:
        return resolved
    return await imgur_album(resolved.album, http, settings)


async def imgur_album(album: str, http: aiohttp.ClientSession, settings: RedditSettings) -> Resolved:
    client_id = secret_value(settings.imgur_client_id)
    if not client_id:
        log.info(
            "imgur album %s skipped: no imgur client id configured (NAMAE_REDDIT__IMGUR_CLIENT_ID)", album
        )
        return _skip(SkipReason.imgur_album_no_client_id)
    api = settings.imgur_api_url.rstrip("/")
    try:
        async with http.get(
            f"{api}/3/album/{album}/images",
            headers={"Authorization": f"Client-ID {client_id}"},
            timeout=IMGUR_TIMEOUT,
        ) as response:
            if response.status != 200:
                log.warning("imgur album %s: imgur answered %s", album, response.status)
                return _skip(SkipReason.imgur_api_error, f"status {response.status}")
            payload = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        log.warning("imgur album %s: %s", album, type(exc).__name__)
        return _skip(SkipReason.imgur_api_error, type(exc).__name__)
    images = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(images, list):
        return _skip(SkipReason.imgur_api_error, "no data")
    urls: list[str] = []
    skipped = 0
    for image in images:
        link = image.get("link") if isinstance(image, dict) else None
        item = resolve_url(link) if isinstance(link, str) else _skip(SkipReason.bad_url)
        if item.ok and not (isinstance(image, dict) and str(image.get("type", "")).startswith("video/")):
            urls.extend(item.urls)
        else:
            skipped += 1
    if not urls:
        return Resolved(skip=SkipReason.video if skipped else SkipReason.gallery_empty, skipped_items=skipped)
    return Resolved(urls=tuple(urls), skipped_items=skipped)


def post_data(post: Any) -> dict[str, Any]:
    """The fields of an asyncpraw Submission (or an already plain dict) as a plain dict."""
    if isinstance(post, Mapping):
        return dict(post)
    return {key: value for key, value in vars(post).items() if not key.startswith("_")}


def is_removed(data: Mapping[str, Any]) -> bool:
    author = data.get("author")
    author_name = author if isinstance(author, str) or author is None else getattr(author, "name", None)
    return bool(
        data.get("removed_by_category")
        or ("author" in data and author_name in (None, "[deleted]"))
        or data.get("selftext") in ("[removed]", "[deleted]")
    )


async def resolve_post(post: Any, http: aiohttp.ClientSession, settings: RedditSettings) -> Resolved:
    """The images of one post: crosspost parent first, then gallery, then the link, then the preview
    Reddit made of a page that is no image. Removed, deleted and video posts are skipped."""
    data = post_data(post)
    for _ in range(CROSSPOST_DEPTH):
        if is_removed(data):
            return _skip(SkipReason.removed)
        parents = data.get("crosspost_parent_list")
        if not (isinstance(parents, list) and parents and isinstance(parents[0], Mapping)):
            break
        data = dict(parents[0])
    if is_removed(data):
        return _skip(SkipReason.removed)
    if data.get("is_video") or data.get("post_hint") in ("hosted:video", "rich:video"):
        return _skip(SkipReason.video)
    if data.get("gallery_data") or data.get("is_gallery"):
        return _resolve_gallery(data)
    if data.get("is_self"):
        return _skip(SkipReason.self_post)

    link = data.get("url_overridden_by_dest") or data.get("url")
    resolved = (
        await resolve_link(html.unescape(link), http, settings)
        if isinstance(link, str)
        else _skip(SkipReason.bad_url)
    )
    if resolved.ok or resolved.skip not in (SkipReason.not_image, SkipReason.reddit_link):
        return resolved
    preview = _preview_url(data)
    return _direct(preview) if preview else resolved


def _preview_url(data: Mapping[str, Any]) -> str | None:
    preview = data.get("preview")
    images = preview.get("images") if isinstance(preview, Mapping) else None
    if not (isinstance(images, list) and images and isinstance(images[0], Mapping)):
        return None
    source = images[0].get("source")
    url = source.get("url") if isinstance(source, Mapping) else None
    if not isinstance(url, str):
        return None
    resolved = resolve_url(html.unescape(url))
    return resolved.urls[0] if resolved.ok else None


def _resolve_gallery(data: Mapping[str, Any]) -> Resolved:
    gallery = data.get("gallery_data")
    items = gallery.get("items") if isinstance(gallery, Mapping) else None
    metadata = data.get("media_metadata")
    if not isinstance(items, list) or not isinstance(metadata, Mapping):
        return _skip(SkipReason.gallery_empty)
    urls: list[str] = []
    indexes: list[int] = []
    skipped = 0
    for index, item in enumerate(items):
        media = metadata.get(item.get("media_id")) if isinstance(item, Mapping) else None
        url = _gallery_item_url(media)
        if url is None:
            skipped += 1
            continue
        urls.append(url)
        indexes.append(index)
    if not urls:
        return Resolved(skip=SkipReason.gallery_empty, skipped_items=skipped)
    return Resolved(urls=tuple(urls), gallery_indexes=tuple(indexes), skipped_items=skipped)


def _gallery_item_url(media: Any) -> str | None:
    if not isinstance(media, Mapping) or media.get("status") != "valid":
        return None  # "failed" or "unprocessed": Reddit has no image for it
    if media.get("e") not in ("Image", "AnimatedImage"):
        return None
    source = media.get("s")
    if not isinstance(source, Mapping):
        return None
    url = source.get("u") or source.get("gif")
    if not isinstance(url, str):
        return None
    resolved = resolve_url(html.unescape(url))
    return resolved.urls[0] if resolved.ok else None
