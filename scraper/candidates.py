"""What a Reddit source hands to the ingest pipeline: one direct image URL with its provenance, and
where bytes came from as the catalog records it (`ImageOrigin`)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.schema import LabelOrigin, Provenance, SourceKind

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


@dataclass(frozen=True)
class ImageOrigin:
    """Where bytes came from and which character they are claimed to show."""

    url: str
    source_id: int | None
    character_id: int | None
    origin: LabelOrigin
    post_id: str | None = None
    comment_id: str | None = None
    permalink: str | None = None
    subreddit: str | None = None
    author: str | None = None
    score: int | None = None
    title: str | None = None

    @classmethod
    def from_candidate(cls, candidate: ImageCandidate) -> ImageOrigin:
        return cls(
            url=candidate.url,
            source_id=candidate.source_id,
            character_id=candidate.character_id,
            origin=LabelOrigin(candidate.origin),
            post_id=candidate.post_id,
            comment_id=candidate.comment_id,
            permalink=candidate.permalink,
            subreddit=candidate.subreddit,
            author=candidate.author,
            score=candidate.score,
            title=candidate.title,
        )

    def provenance(self, image_id: int) -> Provenance:
        return Provenance(
            image_id=image_id,
            source_id=self.source_id,
            character_id=self.character_id,
            post_id=self.post_id,
            comment_id=self.comment_id,
            permalink=self.permalink,
            url=self.url,
            subreddit=self.subreddit,
            author=_clip(self.author, 40),
            score=self.score,
            title=self.title,
        )


def _clip(text: str | None, size: int) -> str | None:
    return text[:size] if text else text
