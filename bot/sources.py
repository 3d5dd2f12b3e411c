"""What pictures a message holds: attachments, image embeds and links to allowed hosts, in order.

Pure parsing of a `discord.Message`; nothing is fetched here. Links to hosts outside
`allowed_hosts` are ignored (never fetched); embeds are taken through Discord's media proxy
(`proxy_url`), whatever host the original was on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import discord

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif")
# Discord's media proxies: embed images arrive through them whatever host the original was on.
PROXY_HOSTS = frozenset(
    {
        "media.discordapp.net",
        "images-ext-1.discordapp.net",
        "images-ext-2.discordapp.net",
        "cdn.discordapp.com",
    }
)
LINK_RE = re.compile(r"<?(https?://[^\s<>|]+)>?", re.IGNORECASE)
NAME_MAX = 60


@dataclass(frozen=True)
class ImageSource:
    kind: str  # attachment | embed | link | ignored
    url: str
    name: str
    attachment: discord.Attachment | None = None
    declared_size: int | None = None

    @classmethod
    def of_attachment(cls, attachment: discord.Attachment) -> ImageSource:
        return cls("attachment", attachment.url, attachment.filename, attachment, attachment.size)


@dataclass
class Collected:
    sources: list[ImageSource] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # name, plain-words reason
    dropped: int = 0  # beyond the per-message limit


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def name_of(url: str) -> str:
    """The file name a member would recognise: the URL's last path segment."""
    path = urlsplit(url).path if "://" in url else url
    return (path.rsplit("/", 1)[-1] or "image")[:NAME_MAX]


def is_image_attachment(attachment: discord.Attachment) -> bool:
    if attachment.content_type:
        return attachment.content_type.split(";")[0].strip().lower().startswith("image/")
    return attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def links_in(text: str) -> list[str]:
    """http(s) links of a message's text, with <angle brackets> and trailing punctuation removed."""
    return [match.group(1).rstrip(".,;:!?)]}'\"") for match in LINK_RE.finditer(text or "")]


def collect_sources(
    message: discord.Message, *, allowed_hosts: set[str], limit: int, explicit: bool = False
) -> Collected:
    """Every image of `message`, in order: attachments, embeds, then links. With `explicit`
    (someone asked), attachments that are not images are reported instead of skipped."""
    found = Collected()
    seen: set[str] = set()

    def add(source: ImageSource) -> None:
        if source.url in seen:
            return
        seen.add(source.url)
        found.sources.append(source)

    for attachment in message.attachments:
        if is_image_attachment(attachment):
            add(ImageSource.of_attachment(attachment))
        elif explicit:
            found.problems.append((attachment.filename, "is not an image"))
    linked: set[str] = set()
    for embed in message.embeds:
        for part in (embed.image, embed.thumbnail):
            proxy = getattr(part, "proxy_url", None)
            original = getattr(part, "url", None)
            url = proxy or original
            if not url:
                continue
            if original:
                linked.add(original)
            if embed.url:
                linked.add(embed.url)
            add(ImageSource("embed", url, name_of(original or url)))
            break  # the image, else the thumbnail: one picture per embed
    for url in links_in(message.content):
        if url in linked:
            continue  # Discord already embedded it; the proxy copy was taken above
        if host_of(url) not in allowed_hosts:
            continue  # not an image host we trust: never fetched
        add(ImageSource("link", url, name_of(url)))
    if len(found.sources) > limit:
        found.dropped = len(found.sources) - limit
        found.sources = found.sources[:limit]
    return found
