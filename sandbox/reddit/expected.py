"""What a scripted world promises: the exact scrape results per source kind and character, and
each image URL with the role the ingest pipeline should give it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpectedImage:
    """One image URL a scan must hand over, and what the ingest pipeline should make of it."""

    url: str
    character: str
    kind: str  # source kind: subreddit | title_search | comment_links
    role: str  # image | exact_duplicate | near_duplicate | hostile
    sha256: str
    duplicate_of: str | None = None  # the original's URL for duplicates
    hostile_case: str | None = None
    flair: str | None = None


@dataclass
class Expected:
    """The exact scrape results of a scripted world, per source kind and character."""

    characters: list[str]
    aliases: dict[str, list[str]]
    subreddits: dict[str, str]  # character -> its own subreddit
    series_subreddit: dict[str, str]  # character -> its series' subreddit
    discussion_threads: dict[str, str]  # series subreddit -> episode thread id
    discussion_flair: str
    title_flair: str
    images: list[ExpectedImage]
    album_urls: set[str]  # reachable only through imgur's API
    skipped: dict[tuple[str, str], Counter[str]]  # (kind, character) -> reason -> count

    def urls(self, kind: str, character: str, *, flair: str | None = None) -> set[str]:
        return {
            image.url
            for image in self.images
            if image.kind == kind
            and image.character == character
            and (flair is None or (image.flair or "").lower() == flair.lower())
        }

    def by_url(self) -> dict[str, ExpectedImage]:
        return {image.url: image for image in self.images}

    def distinct_images(self, character: str) -> int:
        """Images that survive exact dedup and validation (near duplicates count as one)."""
        return sum(1 for i in self.images if i.character == character and i.role == "image")
