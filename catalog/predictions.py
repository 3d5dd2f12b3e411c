"""What the bot answered, kept so that members can correct it: one `Prediction` per answered face
(or per image without a face), the posted picture and its face crops recorded through
`catalog.images` (the scraper's write path), and the reads the reply's buttons need.

Usable without Discord: the bot calls it, and so do the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.images import FaceCrop, PictureFacts, SameFace, add_image, face_of, store_files
from catalog.schema import Image, ImageStatus, Prediction, Provenance
from catalog.store import ImageStore

DISCORD_AUTHOR_PREFIX = "discord:"


class PredictionGone(CatalogError):
    """The prediction a button points at was deleted (forgotten, expired or never existed)."""


class WrongGuild(CatalogError):
    """A component or command tried to act on another guild's prediction or review."""


def discord_author(member_id: int | None) -> str | None:
    """How a Discord member is named in `Provenance.author` and in a label's `created_by`."""
    return f"{DISCORD_AUTHOR_PREFIX}{member_id}" if member_id is not None else None


@dataclass(frozen=True)
class AnswerRecord:
    """One answer: a face (with its box and crop) or, without a face, the whole image."""

    candidates: list[tuple[str, float]]
    unknown: bool
    face_index: int | None = None
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in the image's pixels
    crop_png: bytes | None = None
    threshold: float | None = None
    tag: str | None = None  # how the reply numbers this answer ("2" or "2.1")
    embedding: bytes | None = None  # float16, for the character memory when a label lands
    kind: str | None = None  # the answer kind (models.answer.Kind) the reply showed
    examples: tuple[int | None, ...] = ()  # per candidate: None trained, N from N faces in memory

    @property
    def face(self) -> FaceCrop | None:
        if self.box is None or self.crop_png is None:
            return None
        return FaceCrop.of(self.box, self.crop_png)


@dataclass(frozen=True)
class ImageRecord:
    sha256: str
    answers: list[AnswerRecord]
    data: bytes | None = None  # the posted bytes; None keeps nothing but the prediction
    width: int | None = None
    height: int | None = None
    format: str | None = None
    url: str | None = None  # where the bot got it (attachment, embed or link)

    @property
    def facts(self) -> PictureFacts:
        return PictureFacts(self.sha256, self.width, self.height, self.format)


@dataclass(frozen=True)
class MessageContext:
    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    author_id: int | None
    jump_url: str | None
    model_version: str


def record_predictions(
    engine: Engine,
    store: ImageStore | None,
    context: MessageContext,
    images: list[ImageRecord],
    *,
    same_face: SameFace,
) -> list[list[int]]:
    """Store each image (bytes, Image, Face crops, provenance = the message's jump URL) and one
    Prediction per answer. Returns the prediction ids, image by image, answer by answer.

    A face the catalog already has for the same picture (`same_face` of the two boxes, the
    caller's geometry) is reused, so that a vote labels the scraped face. Bytes go to the store
    before the rows commit (`catalog.images`)."""
    if store is not None:
        for image in images:
            store_files(store, image.data, [f for a in image.answers if (f := a.face) is not None])
    keeps_bytes = store is not None

    ids: list[list[int]] = []
    with session_scope(engine) as session:
        for image in images:
            row = _image_row(session, image, keeps_bytes and image.data is not None)
            if row is not None and context.jump_url:
                session.add(
                    Provenance(
                        image_id=row.id,
                        url=context.jump_url,
                        author=discord_author(context.author_id),
                        title=image.url[:2000] if image.url else None,
                    )
                )
            image_ids: list[int] = []
            for answer in image.answers:
                face = None
                if row is not None and keeps_bytes and (crop := answer.face) is not None:
                    face = face_of(session, row, crop, same_face)
                prediction = Prediction(
                    guild_id=context.guild_id,
                    channel_id=context.channel_id,
                    message_id=context.message_id,
                    author_id=context.author_id,
                    image_sha256=image.sha256,
                    image_id=row.id if row is not None else None,
                    face_id=face.id if face is not None else None,
                    face_index=answer.face_index,
                    box=_box_json(answer.box),
                    model_version=context.model_version,
                    topk={
                        "candidates": [{"label": label, "probability": p} for label, p in answer.candidates],
                        "unknown": answer.unknown,
                        "threshold": answer.threshold,
                        "tag": answer.tag,
                        "kind": answer.kind,
                        "examples": list(answer.examples),
                    },
                    labelled=False,
                    embedding=answer.embedding,
                )
                session.add(prediction)
                session.flush()
                image_ids.append(prediction.id)
            ids.append(image_ids)
    return ids


def attach_reply(engine: Engine, prediction_ids: list[int], reply_message_id: int) -> None:
    if not prediction_ids:
        return
    with session_scope(engine) as session:
        for prediction in session.scalars(select(Prediction).where(Prediction.id.in_(prediction_ids))):
            prediction.reply_message_id = reply_message_id


def _box_json(box: tuple[int, int, int, int] | None) -> dict[str, Any] | None:
    if box is None:
        return None
    x, y, w, h = (int(v) for v in box)
    return {"x": x, "y": y, "w": w, "h": h}


def _image_row(session: Session, image: ImageRecord, has_bytes: bool) -> Image | None:
    row = session.scalar(select(Image).where(Image.sha256 == image.sha256))
    if row is not None:
        if has_bytes and not row.stored and row.status in (ImageStatus.accepted, ImageStatus.review):
            row.stored = True
        return row
    if not has_bytes:
        return None
    has_face = any(a.box is not None for a in image.answers)
    return add_image(session, image.facts, ImageStatus.accepted, stored=True, has_face=has_face)


# --- what the buttons read ------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionView:
    """What a component needs to act on a prediction: its place and its candidates."""

    id: int
    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    reply_message_id: int | None
    candidates: list[tuple[str, float]]
    unknown: bool
    tag: str | None = None


def get_prediction(engine: Engine, prediction_id: int, *, guild_id: int | None) -> PredictionView:
    with session_scope(engine) as session:
        prediction = session.get(Prediction, prediction_id)
        if prediction is None:
            raise PredictionGone("that answer no longer exists (it was deleted or has expired)")
        if prediction.guild_id != guild_id:
            raise WrongGuild("that answer belongs to another server")
        return _view(prediction)


def predictions_of_reply(engine: Engine, reply_message_id: int) -> list[PredictionView]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(Prediction).where(Prediction.reply_message_id == reply_message_id).order_by(Prediction.id)
        )
        return [_view(p) for p in rows]


def _view(prediction: Prediction) -> PredictionView:
    topk = prediction.topk or {}
    return PredictionView(
        id=prediction.id,
        guild_id=prediction.guild_id,
        channel_id=prediction.channel_id,
        message_id=prediction.message_id,
        reply_message_id=prediction.reply_message_id,
        candidates=[(c["label"], float(c["probability"])) for c in topk.get("candidates", [])],
        unknown=bool(topk.get("unknown", False)),
        tag=topk.get("tag"),
    )
