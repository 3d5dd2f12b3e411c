"""What a Reddit source hands to the ingest pipeline: one direct image URL with its provenance."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.schema import LabelOrigin, SourceKind

# The label origin each Reddit source kind gives the images it finds.
ORIGINS = {
    SourceKind.subreddit: LabelOrigin.subreddit,
    SourceKind.title_search: LabelOrigin.title_mention,
    SourceKind.comment_links: LabelOrigin.comment_link,
}


@dataclass(frozen=True)
class SourceView:
    """A detached copy of a catalog source and its character, safe to use outside a session."""

    source_id: int
    kind: str
    character_id: int
    character_name: str
    names: tuple[str, ...]  # the name and every alias, as written
    subreddit: str | None
    query: str | None
    flair: str | None
    nsfw_allowed: bool
    cursor: str | None


@dataclass(frozen=True)
class ImageCandidate:
    url: str  # a resolved, direct image URL
    source_id: int
    character_id: int
    origin: LabelOrigin
    post_id: str  # base36 id without the t3_ prefix
    permalink: str
    subreddit: str
    title: str | None = None
    author: str | None = None
    score: int | None = None
    comment_id: str | None = None
    gallery_index: int | None = None
