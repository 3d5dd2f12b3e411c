"""The labelled set from the catalog: face crops, or whole images where no face was found, with
their resolved label.

Resolved label: the most trusted origin wins (moderator > vote, which the bot writes once a quorum
agrees > folder > subreddit > title mention > comment link); on a tie, a label on the face beats a
label on its image, then the higher weight, then the newer one. A resolved "not a character"
(character_id None) leaves the item out. A face flagged `needs_review` (several faces in one image)
only counts with a label of its own.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.schema import Character, Face, Image, ImageStatus, Label, LabelOrigin, Provenance
from catalog.settings import Settings
from catalog.store import ImageStore
from media.decode import ImageRejected, decode_image
from trainer.dataset import Assembled, Item, _phash
from trainer.progress import Display, counter

log = logging.getLogger(__name__)

ORIGIN_RANK = {origin: rank for rank, origin in enumerate(LabelOrigin)}


@dataclass
class _Claim:
    origin: LabelOrigin
    on_face: bool
    weight: float
    created: Any
    character_id: int | None

    def rank(self) -> tuple:
        return (ORIGIN_RANK[LabelOrigin(self.origin)], self.on_face, self.weight, str(self.created))


def resolve(claims: list[_Claim]) -> _Claim | None:
    return max(claims, key=_Claim.rank) if claims else None


def from_catalog(engine: Engine, settings: Settings, *, progress: Display | None = None) -> Assembled:
    """Every stored image with a resolved character label: its face crops, or the whole image
    when no face was found. `progress` shows the pass over the images (it reads each face crop)."""
    store = ImageStore.from_settings(settings)
    present = set(store.names())  # one listing, not a request per image
    assembled = Assembled(items=[], source="catalog")
    with session_scope(engine) as session:
        names = {
            cid: name
            for cid, name in session.execute(
                select(Character.id, Character.name).where(Character.active.is_(True))
            )
        }
        image_claims: dict[int, list[_Claim]] = defaultdict(list)
        face_claims: dict[int, list[_Claim]] = defaultdict(list)
        for row in session.execute(
            select(
                Label.image_id,
                Label.face_id,
                Label.character_id,
                Label.origin,
                Label.weight,
                Label.created_at,
            )
        ):
            if row.face_id is not None:
                face_claims[row.face_id].append(
                    _Claim(row.origin, True, row.weight, row.created_at, row.character_id)
                )
            elif row.image_id is not None:
                image_claims[row.image_id].append(
                    _Claim(row.origin, False, row.weight, row.created_at, row.character_id)
                )
        posts: dict[int, set[str]] = defaultdict(set)
        for image_id, post_id in session.execute(
            select(Provenance.image_id, Provenance.post_id).where(Provenance.post_id.is_not(None))
        ):
            posts[image_id].add(f"post:{post_id}")
        images = session.execute(
            select(
                Image.id,
                Image.sha256,
                Image.phash,
                Image.status,
                Image.duplicate_of_id,
                Image.stored,
                Image.has_face,
            )
        ).all()
        faces: dict[int, list[Any]] = defaultdict(list)
        for face in session.execute(
            select(Face.id, Face.image_id, Face.index, Face.crop_sha256, Face.needs_review).order_by(
                Face.index
            )
        ):
            faces[face.image_id].append(face)

    assembled.declared = set(names.values())
    # A duplicate's posts and id belong to the picture it duplicates: reposts of one picture
    # in several posts must all be on one side.
    links: dict[int, set[str]] = defaultdict(set)
    for image in images:
        links[image.id] |= {f"img:{image.id}", *posts.get(image.id, ())}
        if image.duplicate_of_id is not None:
            links[image.id].add(f"img:{image.duplicate_of_id}")
            links[image.duplicate_of_id] |= {f"img:{image.id}", *posts.get(image.id, ())}

    step = counter(progress, f"reading {len(images)} catalog images", len(images))
    for image in images:
        step("")
        if not image.stored or image.status not in (ImageStatus.accepted, ImageStatus.review):
            continue
        claims = image_claims.get(image.id, [])
        targets: list[tuple[str, list[_Claim]]] = []
        image_faces = faces.get(image.id, [])
        if image_faces:
            for face in image_faces:
                own = face_claims.get(face.id, [])
                if face.needs_review and not own:
                    assembled.skipped["face_needs_review"] += 1
                    continue
                targets.append((face.crop_sha256, own + claims))
        else:
            targets.append((image.sha256, claims))
        for pixels_sha, target_claims in targets:
            best = resolve(target_claims)
            if best is None:
                assembled.skipped["unlabelled"] += 1
                continue
            if image.status == ImageStatus.review and best.origin != LabelOrigin.moderator:
                assembled.skipped["in_review"] += 1
                continue
            if best.character_id is None:
                assembled.skipped["not_a_character"] += 1
                continue
            if best.character_id not in names:
                assembled.skipped["inactive_character"] += 1
                continue
            if pixels_sha not in present:
                assembled.skipped["missing_in_store"] += 1
                continue
            crop_phash = _stored_phash(store, pixels_sha, settings) if pixels_sha != image.sha256 else None
            assembled.items.append(
                Item(
                    key=pixels_sha,
                    image_sha256=image.sha256,
                    label=names[best.character_id],
                    links=frozenset(links[image.id]),
                    phash=int(image.phash, 16) if image.phash else None,
                    crop_phash=crop_phash,
                    store_sha256=pixels_sha,
                    origin=str(best.origin),
                )
            )
    return assembled


def _stored_phash(store: ImageStore, sha256: str, settings: Settings) -> int | None:
    try:
        return _phash(decode_image(store.read(sha256), settings.images).rgb)
    except (OSError, ImageRejected) as exc:
        log.warning("face crop %s in the store is unreadable (%s)", sha256[:12], exc)
        return None
