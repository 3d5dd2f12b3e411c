"""Which recorded rejections are final and which may be tried again.

A rejection of the bytes themselves (not an image, damaged, a decompression bomb, a malformed URL)
is final. A rejection that only follows from a setting (a blocked address, a size or shape limit,
greyscale refused) is tried again automatically by the next scrape once that setting has changed:
each such rejection keeps a digest of the values it was decided under (`Image.reject_settings`).
The rest (a 4xx answer, a bad redirect) and every setting-dependent one are tried again on request
(`namae scrape --retry-rejected`). Posts skipped as NSFW are not rejections: nothing is recorded
for them, and a source's `nsfw_allowed` is fixed when it is added.

Trying again goes back to where the image was found (its provenance) and replaces the rejection
with the new decision in one transaction (`Ingestor.retry_rejection`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus, Provenance, Source, SourceKind
from catalog.settings import Settings
from scraper.candidates import ORIGINS, ImageOrigin

# Verdicts on the bytes (or the URL itself): no setting changes them.
FINAL = frozenset(
    {
        "empty",
        "not_an_image",
        "unsupported_format",
        "truncated",
        "corrupt",
        "decompression_bomb",
        "bad_url",
    }
)

# The settings each setting-dependent rejection follows from.
DEPENDS_ON: dict[str, Callable[[Settings], Any]] = {
    "blocked_address": lambda s: (s.download.allow_private_addresses, sorted(s.download.hosts.items())),
    "too_many_redirects": lambda s: s.download.max_redirects,
    "too_large": lambda s: s.images.max_bytes,
    "too_small": lambda s: s.images.min_side,
    "bad_aspect": lambda s: s.images.max_aspect,
    "greyscale": lambda s: (s.images.reject_greyscale, s.images.greyscale_saturation),
    # No longer raised (long animations are sampled); earlier rows are tried again once.
    "too_many_frames": lambda s: (
        s.images.max_frames_sampled,
        s.images.max_frames_scanned,
        s.images.max_animation_pixels,
    ),
}


def settings_key(code: str, settings: Settings) -> str | None:
    """A digest of the settings a rejection with this code depends on; None when it depends on none."""
    values = DEPENDS_ON.get(code)
    if values is None:
        return None
    text = json.dumps([code, values(settings)], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reject_code(reject_reason: str | None) -> str:
    """The machine code at the front of `Image.reject_reason` ("code: sentence")."""
    return (reject_reason or "").split(":", 1)[0]


def is_final(code: str) -> bool:
    return code in FINAL


@dataclass(frozen=True)
class Retry:
    """A rejected image to try again, and every place it was found."""

    image_id: int
    code: str
    origins: list[ImageOrigin]  # oldest first


def rejections_to_retry(
    engine: Engine, settings: Settings, source_ids: Iterable[int], *, everything: bool
) -> list[Retry]:
    """Rejections found by these sources that may be tried again now: the setting-dependent ones
    whose settings changed (or were not recorded), or with `everything` every one not final.
    Oldest first, so that they keep their place before what the sources list next."""
    wanted = set(source_ids)
    retries = []
    with session_scope(engine) as session:
        images = session.scalars(
            select(Image)
            .where(Image.status == ImageStatus.rejected)
            .where(Image.id.in_(select(Provenance.image_id).where(Provenance.source_id.in_(wanted))))
            .options(selectinload(Image.provenance))
            .order_by(Image.id)
        ).all()
        kinds = dict(session.execute(select(Source.id, Source.kind).where(Source.id.in_(wanted))).all())
        for image in images:
            code = reject_code(image.reject_reason)
            if is_final(code):
                continue
            key = settings_key(code, settings)
            if not everything and (key is None or image.reject_settings == key):
                continue
            origins = [
                ImageOrigin(
                    url=p.url,
                    source_id=p.source_id,
                    character_id=p.character_id,
                    origin=ORIGINS[SourceKind(kinds[p.source_id])],
                    post_id=p.post_id,
                    comment_id=p.comment_id,
                    permalink=p.permalink,
                    subreddit=p.subreddit,
                    author=p.author,
                    score=p.score,
                    title=p.title,
                )
                for p in image.provenance
                if p.source_id in kinds
            ]
            if origins:
                retries.append(Retry(image.id, code, origins))
    return retries
