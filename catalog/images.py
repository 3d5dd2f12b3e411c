"""How a picture and its face crops enter the catalog: the one write path that the scraper's
`Ingestor` (after its dedup decisions) and the bot's `record_predictions` share.

Files reach the store before the rows that name them commit, so a crash leaves at worst an orphan
file (`ImageStore.check(fix=True)` removes it), never a row without its file. One `Image` row per
sha256; `Face` rows numbered within their image.

The pixel work is the caller's (decoding, hashes, face boxes, crop encoding: `media/`): this
module takes what it computed, as plain values, so that the record needs nothing of ours. Matching a
new face box with a face the catalog already has is geometry too; the caller passes the rule
(`media.boxes.same_face`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.schema import Face, Image, ImageStatus
from catalog.store import ImageStore, sha256_of

Rect = tuple[int, int, int, int]  # x, y, width, height in the image's own pixels
SameFace = Callable[[Rect, Rect], bool]


@dataclass(frozen=True)
class FaceCrop:
    """A face found in a picture: its box and the encoded crop stored for it."""

    x: int
    y: int
    w: int
    h: int
    crop: bytes  # PNG
    crop_sha256: str

    @classmethod
    def of(cls, box: Rect, crop: bytes) -> FaceCrop:
        x, y, w, h = (int(v) for v in box)
        return cls(x, y, w, h, crop, sha256_of(crop))

    @property
    def rect(self) -> Rect:
        return (self.x, self.y, self.w, self.h)


@dataclass(frozen=True)
class PictureFacts:
    """What decoding and hashing said about a picture, in the catalog's column values."""

    sha256: str
    width: int | None = None
    height: int | None = None
    format: str | None = None
    phash: str | None = None  # hex, as `media.hashes.int_to_hash` writes it
    dhash: str | None = None
    crop_hashes: str | None = None
    signature: bytes | None = None


def store_files(store: ImageStore, data: bytes | None, faces: Sequence[FaceCrop]) -> None:
    """The picture's bytes (when kept) and its face crops, before any row names them."""
    if data is not None:
        store.put(data)
    for face in faces:
        store.put(face.crop)


def add_image(
    session: Session,
    facts: PictureFacts,
    status: ImageStatus,
    *,
    stored: bool,
    has_face: bool | None = None,
    duplicate_of: int | None = None,
) -> Image:
    """A new `Image` row (flushed, so it has its id)."""
    image = Image(
        sha256=facts.sha256,
        phash=facts.phash,
        dhash=facts.dhash,
        crop_hashes=facts.crop_hashes,
        signature=facts.signature,
        width=facts.width,
        height=facts.height,
        format=facts.format,
        status=status,
        stored=stored,
        has_face=has_face,
        duplicate_of_id=duplicate_of,
    )
    session.add(image)
    session.flush()
    return image


def add_face(
    session: Session, image: Image, face: FaceCrop, *, index: int, needs_review: bool = False
) -> Face:
    """A new `Face` row of `image` (flushed)."""
    row = Face(
        image_id=image.id,
        index=index,
        x=face.x,
        y=face.y,
        w=face.w,
        h=face.h,
        crop_sha256=face.crop_sha256,
        needs_review=needs_review,
    )
    session.add(row)
    session.flush()
    return row


def face_of(session: Session, image: Image, face: FaceCrop, same_face: SameFace) -> Face:
    """The catalog's face of `image` that `face` is (by the caller's rule), or a new one after
    the image's last face."""
    faces = list(session.scalars(select(Face).where(Face.image_id == image.id).order_by(Face.index)))
    for known in faces:
        if same_face((known.x, known.y, known.w, known.h), face.rect):
            return known
    return add_face(session, image, face, index=(faces[-1].index + 1) if faces else 0)
