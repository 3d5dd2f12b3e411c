"""What the sources claim an image shows, written so that the catalog does not depend on the order
in which the claims arrive.

Every claim (a character and a label origin, from one post) lands on the picture's representative
(the kept member of its near-duplicate cluster): a label per origin, so a stronger source adds its
label beside a weaker one and the most trusted decides. Two characters claiming the same origin of
one picture keep the lower character id in that slot, deterministically. A picture claimed as two
characters, or a near copy of a picture of another character, is never settled silently: both
sides go to review (one review row per picture and character), whichever came first.

Which member represents a cluster is decided by `scraper.ingest`'s `quality`: more pixels, then
more bytes (less compressed), then the larger sha256, so that any arrival order keeps the same one;
a better member arriving later takes the place of the kept one (`demote`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.schema import LABEL_TRUST, Image, ImageStatus, Label, LabelOrigin, Review

REVIEW_NEAR_DUPLICATE = "near_duplicate_other_character"
REVIEW_SAME_BYTES = "same_image_other_character"


def representative(session: Session, image_id: int) -> Image:
    """The kept image a duplicate row points at (the image itself when it is kept)."""
    image = session.get_one(Image, image_id)
    if image.duplicate_of_id is not None:
        return session.get_one(Image, image.duplicate_of_id)
    return image


def claim(session: Session, image: Image, character_id: int | None, origin: LabelOrigin) -> set[int]:
    """Label `image` (and its one face, when it has exactly one) as `character_id` in the slot of
    `origin`; a slot held by another character keeps the lower id, and both come back (for
    `review_conflicts`)."""
    conflict: set[int] = set()
    targets: list[int | None] = [None]
    if len(image.faces) == 1 and not image.faces[0].needs_review:
        targets.append(image.faces[0].id)
    for face_id in targets:
        slot = Label.face_id.is_(None) if face_id is None else Label.face_id == face_id
        held = session.scalar(select(Label).where(Label.image_id == image.id, slot, Label.origin == origin))
        if held is None:
            session.add(
                Label(
                    image_id=image.id,
                    face_id=face_id,
                    character_id=character_id,
                    origin=origin,
                    weight=LABEL_TRUST[origin],
                )
            )
        elif character_id is not None and held.character_id != character_id:
            conflict |= {character_id} | ({held.character_id} if held.character_id is not None else set())
            if held.character_id is None or character_id < held.character_id:
                held.character_id = character_id
    session.flush()
    return conflict


def claimed_characters(session: Session, image_id: int) -> set[int]:
    return set(
        session.scalars(
            select(Label.character_id).where(
                Label.image_id == image_id, Label.face_id.is_(None), Label.character_id.is_not(None)
            )
        )
    )


def review_conflicts(session: Session, image: Image, claimants: set[int | None]) -> int:
    """When `image` is claimed as more than one character, put it in review with a row per
    character (the slot holders and `claimants`); returns the rows written."""
    characters = claimed_characters(session, image.id) | {c for c in claimants if c is not None}
    if len(characters) < 2:
        return 0
    return sum(
        ensure_review(
            session, image, character, REVIEW_SAME_BYTES, "the same image is claimed as several characters"
        )
        for character in sorted(characters)
    )


def ensure_review(session: Session, image: Image, character_id: int | None, kind: str, reason: str) -> int:
    """One review row of `kind` per image and character; the image is held for review."""
    if image.status == ImageStatus.accepted:
        image.status = ImageStatus.review
    exists = session.scalar(
        select(Review.id).where(
            Review.image_id == image.id, Review.character_id == character_id, Review.kind == kind
        )
    )
    if exists is not None:
        return 0
    session.add(Review(kind=kind, reason=reason, image_id=image.id, character_id=character_id))
    return 1


def near_duplicate_review(session: Session, image: Image, character_id: int | None, other: int | None) -> int:
    return ensure_review(
        session,
        image,
        character_id,
        REVIEW_NEAR_DUPLICATE,
        f"a near-duplicate of it is labelled as character {other}",
    )


def demote(session: Session, old: Image, new: Image) -> list[tuple[int | None, LabelOrigin]]:
    """Make `old` a duplicate of the better `new`: its labels, faces and reviews go (their claims
    are returned, to be made on `new`), its duplicates point at `new`. Its bytes are the caller's
    to remove from the store once this commits."""
    labels = session.scalars(select(Label).where(Label.image_id == old.id)).all()
    claims = sorted(
        {(label.character_id, LabelOrigin(label.origin)) for label in labels if label.face_id is None},
        key=lambda c: (c[0] or 0, c[1]),
    )
    for label in labels:
        session.delete(label)
    for review in session.scalars(select(Review).where(Review.image_id == old.id)).all():
        session.delete(review)
    old.faces.clear()
    for duplicate in session.scalars(select(Image).where(Image.duplicate_of_id == old.id)).all():
        duplicate.duplicate_of_id = new.id
    old.status = ImageStatus.duplicate
    old.duplicate_of_id = new.id
    old.stored = False
    old.has_face = None
    session.flush()
    return claims
