"""What ingesting one file computes and what becomes of it: the prepared facts of a file (decoded,
hashed, its faces cropped), the outcome of its catalog decision, and the key of a rejection whose
bytes never arrived.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from catalog.images import FaceCrop, PictureFacts
from media.hashes import Fingerprint, crop_hashes_to_text, int_to_hash


class OutcomeKind(enum.StrEnum):
    new = "new"  # stored, status accepted or review
    duplicate = "duplicate"  # the same bytes were already in the catalog: provenance added
    near_duplicate = "near_duplicate"  # a near copy of an image of the same character: not stored
    review = "review"  # a near copy of another character's image: stored, queued for a moderator
    rejected = "rejected"  # not an acceptable image; the reason is recorded
    known = "known"  # this post's URL was processed before: nothing fetched
    error = "error"  # a transient failure (timeout, 5xx): nothing written, tried again next run


@dataclass(frozen=True)
class IngestOutcome:
    kind: OutcomeKind
    image_id: int | None = None
    sha256: str | None = None
    reason: str | None = None  # rejection or error code
    detail: str | None = None
    faces: int = 0
    reviews: int = 0  # Review rows this outcome wrote for the moderators' queue

    @property
    def flagged(self) -> bool:
        return self.reviews > 0


@dataclass
class Prepared:
    """The CPU-heavy part of ingesting one file, computed off the event loop."""

    sha256: str
    data: bytes
    rejection: tuple[str, str] | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    phash: int = 0
    dhash: int = 0
    fingerprint: Fingerprint | None = None  # sub-crop hashes + signature, for crop-tolerant dedup
    faces: list[FaceCrop] = field(default_factory=list)

    @property
    def facts(self) -> PictureFacts:
        return PictureFacts(
            sha256=self.sha256,
            width=self.width,
            height=self.height,
            format=self.format,
            phash=int_to_hash(self.phash),
            dhash=int_to_hash(self.dhash),
            crop_hashes=crop_hashes_to_text(self.fingerprint.crops) if self.fingerprint else None,
            signature=self.fingerprint.signature if self.fingerprint else None,
        )


def unfetched_key(url: str) -> str:
    """The `sha256` of a rejection whose bytes never arrived whole (too large, 404, blocked):
    a digest of the URL in a namespace no file's digest can collide with in practice."""
    return hashlib.sha256(b"namae-unfetched\0" + url.encode()).hexdigest()
