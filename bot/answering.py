"""From a message's image sources to answers: read each picture (attachments from Discord's CDN,
embeds and links through the SSRF-safe fetcher), strip what follows the image, and answer it
through the `InferenceService`. One `Outcome` per source; no Discord replies, no database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.inference import InferenceService, NoModel
from bot.sources import PROXY_HOSTS, Collected, ImageSource
from media.decode import ImageRejected
from media.fetch import FetchError, SafeFetcher
from media.trailing import without_trailing_data

if TYPE_CHECKING:
    from catalog.settings import Settings
    from models.answer import Answer

# Links the fetcher may not follow (private addresses, other hosts, malformed) are left out of
# the reply, as if they were not images: saying why would tell a prober what we refused.
SILENT_FETCH_FAILURES = frozenset({"blocked_address", "host_not_allowed", "bad_url"})


@dataclass
class Outcome:
    """One image of a request: its answer and bytes, or the plain-words reason it has none."""

    number: int
    source: ImageSource
    result: Answer | None = None
    data: bytes | None = None
    problem: str | None = None


def too_large(size: int, limit: int) -> str:
    return f"too large ({size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.1f} MB)"


def lower_first(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else "could not be read"


class ImageAnswerer:
    """Reads and answers image sources; owns the fetcher (open it with `start`, close with `close`)."""

    def __init__(
        self, settings: Settings, inference: InferenceService, *, exempt_networks: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings
        self.inference = inference
        self.max_bytes = settings.discord.max_image_bytes
        self.allowed_hosts = {h.lower() for h in settings.discord.allowed_hosts}
        self.exempt_networks = exempt_networks
        self.fetcher: SafeFetcher | None = None

    async def start(self) -> None:
        self.fetcher = SafeFetcher(
            self.settings.download,
            max_bytes=self.max_bytes,
            allowed_hosts=self.allowed_hosts | PROXY_HOSTS,
            exempt_networks=self.exempt_networks,
        )
        await self.fetcher.__aenter__()

    async def close(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.close()
            self.fetcher = None

    async def read(self, source: ImageSource) -> bytes:
        limit = self.max_bytes
        if source.attachment is not None:
            if source.declared_size is not None and source.declared_size > limit:
                raise ImageRejected("too_large", too_large(source.declared_size, limit))
            data = await source.attachment.read()
        else:
            assert self.fetcher is not None, "ImageAnswerer.start() was not awaited"
            fetched = await self.fetcher.fetch(source.url, max_bytes=limit)
            data = fetched.data
        if len(data) > limit:
            raise ImageRejected("too_large", too_large(len(data), limit))
        return data

    async def answer_one(self, number: int, source: ImageSource) -> Outcome:
        outcome = Outcome(number, source)
        try:
            async with self.inference.slots:  # bounds downloaded-but-unclassified images in memory
                data = await self.read(source)
                # Only the image itself is hashed, answered and kept: a ZIP appended after a JPEG's
                # end (a polyglot) never reaches the image store.
                data = await asyncio.to_thread(without_trailing_data, data)
                outcome.result = await self.inference.classify(data)
                outcome.data = data
        except ImageRejected as exc:
            outcome.problem = lower_first(exc.detail)
        except FetchError as exc:
            if exc.reason in SILENT_FETCH_FAILURES:
                outcome.source = ImageSource("ignored", source.url, source.name)
            elif exc.reason == "too_large":
                outcome.problem = f"too large (the limit is {self.max_bytes:,} bytes)"
            else:
                outcome.problem = f"could not be downloaded ({exc.reason})"
        except discord.HTTPException as exc:
            outcome.problem = f"could not be downloaded (HTTP {exc.status})"
        return outcome

    async def answer(self, collected: Collected) -> list[Outcome]:
        """Every source answered at once (bounded by the service's slots), numbered from 1 in
        order; sources the fetcher silently refused are left out."""
        if self.inference.classifier is None:
            raise NoModel()
        outcomes = await asyncio.gather(
            *(self.answer_one(i + 1, source) for i, source in enumerate(collected.sources))
        )
        kept = [o for o in outcomes if o.source.kind != "ignored"]
        for i, outcome in enumerate(kept):
            outcome.number = i + 1
        return kept
