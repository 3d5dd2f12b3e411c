"""Community corrections: predictions the bot made, members' votes on them, and how votes become
labels. Usable without Discord: the bot calls it, and so do `namae forget` and the tests.

Rules (DESIGN.md, "Labels"):
- one vote per member per prediction; a changed vote replaces the old one (an upsert, race-free on
  SQLite and PostgreSQL);
- a choice that reaches the quorum and leads every other choice becomes a `vote` label;
- a moderator's vote alone becomes a `moderator` label and settles any open review;
- a tie at the quorum, or a winning choice that contradicts the image's source label (a scraped
  subreddit, title or comment label), goes to the moderators' review queue instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from catalog.characters import name_key, slugify
from catalog.db import is_sqlite, session_scope
from catalog.errors import CatalogError
from catalog.schema import (
    LABEL_TRUST,
    Character,
    CharacterName,
    Face,
    Image,
    ImageStatus,
    Label,
    LabelOrigin,
    Prediction,
    Provenance,
    Review,
    ReviewStatus,
    Vote,
    utcnow,
)
from catalog.store import ImageStore
from media.boxes import iou

SOURCE_ORIGINS = (
    LabelOrigin.comment_link,
    LabelOrigin.title_mention,
    LabelOrigin.subreddit,
    LabelOrigin.folder,
)
REVIEW_TIE = "vote_tie"
REVIEW_SOURCE = "vote_disagrees_with_source"
NOT_A_CHARACTER = "not a character"
DISCORD_AUTHOR_PREFIX = "discord:"
FACE_MATCH_IOU = 0.5


class PredictionGone(CatalogError):
    """The prediction a button points at was deleted (forgotten, expired or never existed)."""


class WrongGuild(CatalogError):
    """A component or command tried to act on another guild's prediction or review."""


# --- recording predictions --------------------------------------------------------------------


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


@dataclass(frozen=True)
class ImageRecord:
    sha256: str
    answers: list[AnswerRecord]
    data: bytes | None = None  # the posted bytes; None keeps nothing but the prediction
    width: int | None = None
    height: int | None = None
    format: str | None = None
    url: str | None = None  # where the bot got it (attachment, embed or link)


@dataclass(frozen=True)
class MessageContext:
    guild_id: int | None
    channel_id: int | None
    message_id: int | None
    author_id: int | None
    jump_url: str | None
    model_version: str


def record_predictions(
    engine: Engine, store: ImageStore | None, context: MessageContext, images: list[ImageRecord]
) -> list[list[int]]:
    """Store each image (bytes, Image, Face crops, provenance = the message's jump URL) and one
    Prediction per answer. Returns the prediction ids, image by image, answer by answer.

    Bytes go to the store before the rows commit; a failed transaction leaves at most an orphan
    file, which `ImageStore.check(fix=True)` removes."""
    stored: dict[str, bool] = {}
    crops: dict[tuple[int, int], str] = {}
    if store is not None:
        for i, image in enumerate(images):
            if image.data is not None:
                store.put(image.data)
                stored[image.sha256] = True
            for j, answer in enumerate(image.answers):
                if answer.crop_png is not None:
                    crops[(i, j)] = store.put(answer.crop_png)

    ids: list[list[int]] = []
    with session_scope(engine) as session:
        for i, image in enumerate(images):
            row = _image_row(session, image, stored.get(image.sha256, False))
            if row is not None and context.jump_url:
                session.add(
                    Provenance(
                        image_id=row.id,
                        url=context.jump_url,
                        author=_author(context.author_id),
                        title=image.url[:2000] if image.url else None,
                    )
                )
            image_ids: list[int] = []
            for j, answer in enumerate(image.answers):
                face = None
                if row is not None and answer.box is not None and (i, j) in crops:
                    face = _face_row(session, row, answer.box, crops[(i, j)])
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
                    },
                    labelled=False,
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


def _author(member_id: int | None) -> str | None:
    return f"{DISCORD_AUTHOR_PREFIX}{member_id}" if member_id is not None else None


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
    row = Image(
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        format=image.format,
        status=ImageStatus.accepted,
        stored=True,
        has_face=any(a.box is not None for a in image.answers),
    )
    session.add(row)
    session.flush()
    return row


def _face_row(session: Session, image: Image, box: tuple[int, int, int, int], crop_sha: str) -> Face:
    faces = list(session.scalars(select(Face).where(Face.image_id == image.id).order_by(Face.index)))
    for face in faces:
        if iou((face.x, face.y, face.w, face.h), box) >= FACE_MATCH_IOU:
            return face
    x, y, w, h = (int(v) for v in box)
    face = Face(
        image_id=image.id,
        index=(faces[-1].index + 1) if faces else 0,
        x=x,
        y=y,
        w=w,
        h=h,
        crop_sha256=crop_sha,
    )
    session.add(face)
    session.flush()
    return face


# --- characters for votes --------------------------------------------------------------------


def character_for_label(session: Session, label: str) -> Character | None:
    """The catalog character a model label names (labels are slugs or names)."""
    character = session.scalar(select(Character).where(Character.slug.in_({label, slugify(label)})))
    if character is None:
        character = session.scalar(
            select(Character).join(CharacterName).where(CharacterName.key == name_key(label))
        )
    return character


def resolve_labels(engine: Engine, labels: list[str]) -> dict[str, tuple[int, str] | None]:
    """Model labels -> (character id, display name), or None for labels the catalog lacks."""
    with session_scope(engine) as session:
        out: dict[str, tuple[int, str] | None] = {}
        for label in dict.fromkeys(labels):
            character = character_for_label(session, label)
            out[label] = (character.id, character.name) if character is not None else None
        return out


def search_characters(engine: Engine, text: str, *, limit: int = 25) -> list[tuple[int, str]]:
    """Active characters whose name or alias contains `text` (case and accent blind), best first:
    prefix matches before inner matches, then alphabetical."""
    key = name_key(text)
    with session_scope(engine) as session:
        query = (
            select(Character.id, Character.name, CharacterName.key)
            .join(CharacterName)
            .where(Character.active.is_(True))
        )
        if key:
            escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(CharacterName.key.like(f"%{escaped}%", escape="\\"))
        rows = session.execute(query.order_by(Character.name).limit(limit * 4)).all()
    best: dict[int, tuple[int, str]] = {}
    for character_id, name, name_k in rows:
        rank = 0 if name_k.startswith(key) else 1
        if character_id not in best or rank < best[character_id][0]:
            best[character_id] = (rank, name)
    ordered = sorted(best.items(), key=lambda item: (item[1][0], item[1][1].casefold()))
    return [(character_id, name) for character_id, (_, name) in ordered[:limit]]


# --- votes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """Votes on one prediction, as the reply shows them."""

    prediction_id: int
    counts: list[tuple[str, int]]  # display name (or NOT_A_CHARACTER), count; most votes first
    labelled: bool
    label: str | None = None  # the resolved label's display name, when there is one

    @property
    def total(self) -> int:
        return sum(count for _, count in self.counts)


@dataclass(frozen=True)
class VoteOutcome:
    prediction_id: int
    status: str  # counted | labelled | moderator | review | unlabellable
    tally: Tally
    review_id: int | None = None
    replaced: bool = False  # the member had voted before; their vote changed


def cast_vote(
    engine: Engine,
    *,
    prediction_id: int,
    member_id: int,
    guild_id: int | None,
    character_id: int | None = None,
    not_character: bool = False,
    is_moderator: bool = False,
    quorum: int = 2,
) -> VoteOutcome:
    """Record (or replace) `member_id`'s vote and settle what it changes, in one transaction.

    Votes on one prediction are serialized (a row lock on PostgreSQL, SQLite's single writer), so
    many members voting at once are counted exactly once each and the quorum fires once."""
    if (character_id is None) != bool(not_character):
        raise CatalogError("a vote names a character or says 'not a character', exactly one of the two")
    if quorum < 1:
        raise CatalogError("the quorum must be at least 1")
    with session_scope(engine) as session:
        prediction = session.scalar(
            select(Prediction).where(Prediction.id == prediction_id).with_for_update()
        )
        if prediction is None:
            raise PredictionGone("that answer no longer exists (it was deleted or has expired)")
        if prediction.guild_id != guild_id:
            raise WrongGuild("that answer belongs to another server")
        if character_id is not None:
            character = session.get(Character, character_id)
            if character is None or not character.active:
                raise CatalogError("that character is not in the catalog (any more)")
        replaced = (
            session.scalar(
                select(Vote.id).where(Vote.prediction_id == prediction_id, Vote.member_id == member_id)
            )
            is not None
        )
        _upsert_vote(session, engine, prediction_id, member_id, character_id, not_character, is_moderator)
        status, review_id = _settle(session, prediction, member_id, character_id, is_moderator, quorum)
        tally = _tally(session, prediction)
    return VoteOutcome(prediction_id, status, tally, review_id, replaced)


def _upsert_vote(
    session: Session,
    engine: Engine,
    prediction_id: int,
    member_id: int,
    character_id: int | None,
    not_character: bool,
    is_moderator: bool,
) -> None:
    insert = sqlite_insert if is_sqlite(engine) else pg_insert
    now = utcnow()
    statement = insert(Vote).values(
        prediction_id=prediction_id,
        member_id=member_id,
        character_id=character_id,
        not_character=not_character,
        is_moderator=is_moderator,
        created_at=now,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Vote.prediction_id, Vote.member_id],
        set_={
            "character_id": character_id,
            "not_character": not_character,
            "is_moderator": is_moderator,
            "updated_at": now,
        },
    )
    session.execute(statement)


Choice = int | None  # a character id, or None for "not a character"


def _counts(session: Session, prediction_id: int) -> Counter[Choice]:
    rows = session.execute(
        select(Vote.character_id, Vote.not_character, func.count())
        .where(Vote.prediction_id == prediction_id)
        .group_by(Vote.character_id, Vote.not_character)
    ).all()
    return Counter({(None if not_char else character_id): count for character_id, not_char, count in rows})


def _settle(
    session: Session,
    prediction: Prediction,
    member_id: int,
    choice: Choice,
    is_moderator: bool,
    quorum: int,
) -> tuple[str, int | None]:
    if prediction.image_id is None:
        # Nothing stored to label (a private /classify or an image the store never kept).
        return "unlabellable", None
    if is_moderator:
        _put_label(session, prediction, choice, LabelOrigin.moderator, f"{DISCORD_AUTHOR_PREFIX}{member_id}")
        prediction.labelled = True
        _close_reviews(session, prediction.id, member_id, ReviewStatus.approved)
        return "moderator", None
    if _label(session, prediction, LabelOrigin.moderator) is not None:
        return "counted", None  # a moderator already decided; votes are only shown

    ranked = _counts(session, prediction.id).most_common()
    leader, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if top < quorum:
        return "counted", None
    if top == runner_up:
        tied = [c for c, n in ranked if n == top]
        names = ", ".join(_choice_name(session, c) for c in tied)
        return "review", _open_review(
            session, prediction, REVIEW_TIE, f"votes tie {top}-{top} between {names}", tied[0]
        )
    source = _source_label(session, prediction)
    if source is not None and source.character_id != leader:
        reason = (
            f"{top} votes say {_choice_name(session, leader)}, the {source.origin} label says "
            f"{_choice_name(session, source.character_id)}"
        )
        return "review", _open_review(session, prediction, REVIEW_SOURCE, reason, leader)
    _put_label(session, prediction, leader, LabelOrigin.vote, f"vote:{prediction.id}")
    prediction.labelled = True
    return "labelled", None


def _target(prediction: Prediction):
    face_clause = (
        Label.face_id.is_(None) if prediction.face_id is None else Label.face_id == prediction.face_id
    )
    return (Label.image_id == prediction.image_id, face_clause)


def _label(session: Session, prediction: Prediction, origin: LabelOrigin) -> Label | None:
    return session.scalar(select(Label).where(*_target(prediction), Label.origin == origin))


def _source_label(session: Session, prediction: Prediction) -> Label | None:
    """The most trusted scraped label of the prediction's face, or else of its whole image."""
    labels = list(
        session.scalars(
            select(Label).where(Label.image_id == prediction.image_id, Label.origin.in_(SOURCE_ORIGINS))
        )
    )
    if prediction.face_id is not None:
        own = [label for label in labels if label.face_id == prediction.face_id]
        labels = own or [label for label in labels if label.face_id is None]
    if not labels:
        return None
    return max(labels, key=lambda label: LABEL_TRUST[LabelOrigin(label.origin)])


def _put_label(
    session: Session, prediction: Prediction, choice: Choice, origin: LabelOrigin, created_by: str
) -> Label:
    label = _label(session, prediction, origin)
    if label is None:
        label = Label(image_id=prediction.image_id, face_id=prediction.face_id, origin=origin)
        session.add(label)
    label.character_id = choice
    label.weight = LABEL_TRUST[origin]
    label.created_by = created_by
    label.created_at = utcnow()
    session.flush()
    return label


def _open_review(session: Session, prediction: Prediction, kind: str, reason: str, proposed: Choice) -> int:
    existing = session.scalar(
        select(Review).where(Review.prediction_id == prediction.id, Review.status == ReviewStatus.open)
    )
    if existing is not None:
        existing.kind, existing.reason, existing.character_id = kind, reason, proposed
        return existing.id
    review = Review(
        kind=kind,
        reason=reason,
        image_id=prediction.image_id,
        face_id=prediction.face_id,
        prediction_id=prediction.id,
        character_id=proposed,
        guild_id=prediction.guild_id,
        status=ReviewStatus.open,
    )
    session.add(review)
    session.flush()
    return review.id


def _close_reviews(session: Session, prediction_id: int, moderator_id: int, status: ReviewStatus) -> None:
    for review in session.scalars(
        select(Review).where(Review.prediction_id == prediction_id, Review.status == ReviewStatus.open)
    ):
        review.status = status
        review.resolved_by = moderator_id
        review.resolved_at = utcnow()


def _choice_name(session: Session, choice: Choice) -> str:
    if choice is None:
        return NOT_A_CHARACTER
    character = session.get(Character, choice)
    return character.name if character is not None else f"character #{choice}"


def _tally(session: Session, prediction: Prediction) -> Tally:
    counts = [(_choice_name(session, c), n) for c, n in _counts(session, prediction.id).most_common()]
    label_name = None
    if prediction.labelled and prediction.image_id is not None:
        for origin in (LabelOrigin.moderator, LabelOrigin.vote):
            label = _label(session, prediction, origin)
            if label is not None:
                label_name = _choice_name(session, label.character_id)
                break
    return Tally(prediction.id, counts, prediction.labelled, label_name)


def tallies(engine: Engine, prediction_ids: list[int]) -> dict[int, Tally]:
    with session_scope(engine) as session:
        predictions = session.scalars(select(Prediction).where(Prediction.id.in_(prediction_ids)))
        return {p.id: _tally(session, p) for p in predictions}


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


# --- the review queue ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    id: int
    kind: str
    reason: str
    prediction_id: int | None
    proposed: str  # display name of the choice approval would apply
    jump_url: str | None


def open_reviews(
    engine: Engine, guild_id: int, *, offset: int = 0, limit: int = 5
) -> tuple[list[ReviewItem], int]:
    """A page of the guild's open reviews (oldest first) and how many are open in all."""
    with session_scope(engine) as session:
        where = (Review.guild_id == guild_id, Review.status == ReviewStatus.open)
        total = session.scalar(select(func.count()).select_from(Review).where(*where)) or 0
        rows = session.scalars(select(Review).where(*where).order_by(Review.id).offset(offset).limit(limit))
        items = []
        for review in rows:
            prediction = session.get(Prediction, review.prediction_id) if review.prediction_id else None
            jump = None
            if prediction is not None and prediction.message_id is not None:
                jump = (
                    f"https://discord.com/channels/{prediction.guild_id}/{prediction.channel_id}/"
                    f"{prediction.message_id}"
                )
            items.append(
                ReviewItem(
                    review.id,
                    review.kind,
                    review.reason,
                    review.prediction_id,
                    _choice_name(session, review.character_id),
                    jump,
                )
            )
        return items, total


def resolve_review(engine: Engine, review_id: int, *, approve: bool, moderator_id: int, guild_id: int) -> str:
    """Approve (the proposed choice becomes a moderator label) or reject an open review."""
    with session_scope(engine) as session:
        review = session.scalar(select(Review).where(Review.id == review_id).with_for_update())
        if review is None:
            raise CatalogError("that review no longer exists")
        if review.guild_id != guild_id:
            raise WrongGuild("that review belongs to another server")
        if review.status != ReviewStatus.open:
            return f"already {review.status}"
        review.status = ReviewStatus.approved if approve else ReviewStatus.rejected
        review.resolved_by = moderator_id
        review.resolved_at = utcnow()
        if approve and review.prediction_id is not None:
            prediction = session.get(Prediction, review.prediction_id)
            if prediction is not None and prediction.image_id is not None:
                _put_label(
                    session,
                    prediction,
                    review.character_id,
                    LabelOrigin.moderator,
                    f"{DISCORD_AUTHOR_PREFIX}{moderator_id}",
                )
                prediction.labelled = True
        return f"approved: {_choice_name(session, review.character_id)}" if approve else "rejected"


# --- privacy ---------------------------------------------------------------------------------


@dataclass
class ForgetCounts:
    votes: int = 0
    predictions: int = 0
    images: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"votes": self.votes, "predictions": self.predictions, "images": self.images}


def forget_member(engine: Engine, member_id: int, store: ImageStore | None = None) -> ForgetCounts:
    """Delete a member's votes, the predictions made on their messages, and the images they
    posted that nothing else refers to (with the bytes in the store, when one is given).

    Labels a quorum already made stay: they are the community's, and no longer carry the member."""
    counts = ForgetCounts()
    with session_scope(engine) as session:
        counts.votes = session.execute(delete(Vote).where(Vote.member_id == member_id)).rowcount or 0
        counts.predictions = (
            session.execute(delete(Prediction).where(Prediction.author_id == member_id)).rowcount or 0
        )
        author = _author(member_id)
        image_ids = set(session.scalars(select(Provenance.image_id).where(Provenance.author == author)))
        session.execute(delete(Provenance).where(Provenance.author == author))
        counts.images, counts.files = _drop_unreferenced(session, image_ids)
    _delete_files(store, counts.files, engine)
    return counts


def discard_predictions(
    engine: Engine, store: ImageStore | None, prediction_ids: list[int], jump_url: str | None
) -> ForgetCounts:
    """Undo `record_predictions` for a reply that could not be sent (the message was deleted)."""
    counts = ForgetCounts()
    with session_scope(engine) as session:
        image_ids = set(
            session.scalars(
                select(Prediction.image_id).where(
                    Prediction.id.in_(prediction_ids), Prediction.image_id.is_not(None)
                )
            )
        )
        counts.predictions = (
            session.execute(delete(Prediction).where(Prediction.id.in_(prediction_ids))).rowcount or 0
        )
        if jump_url:
            session.execute(
                delete(Provenance).where(Provenance.image_id.in_(image_ids), Provenance.url == jump_url)
            )
        counts.images, counts.files = _drop_unreferenced(session, image_ids, only_bot_origin=True)
    _delete_files(store, counts.files, engine)
    return counts


def purge_expired(
    engine: Engine, store: ImageStore | None, *, days: int, now: datetime | None = None
) -> ForgetCounts:
    """Retention: unlabelled predictions older than `days` go, with the posted images nothing else
    needs. Labelled ones stay: they are training data now."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    counts = ForgetCounts()
    with session_scope(engine) as session:
        expired = list(
            session.execute(
                select(Prediction.id, Prediction.image_id).where(
                    Prediction.created_at < cutoff, Prediction.labelled.is_(False)
                )
            ).all()
        )
        ids = [pid for pid, _ in expired]
        image_ids = {iid for _, iid in expired if iid is not None}
        if ids:
            counts.votes = session.execute(delete(Vote).where(Vote.prediction_id.in_(ids))).rowcount or 0
            counts.predictions = (
                session.execute(delete(Prediction).where(Prediction.id.in_(ids))).rowcount or 0
            )
        candidates = set(
            session.scalars(
                select(Provenance.image_id).where(
                    Provenance.image_id.in_(image_ids), Provenance.author.like(f"{DISCORD_AUTHOR_PREFIX}%")
                )
            )
        )
        counts.images, counts.files = _drop_unreferenced(session, candidates, only_bot_origin=True)
    _delete_files(store, counts.files, engine)
    return counts


def _drop_unreferenced(
    session: Session, image_ids: set[int], *, only_bot_origin: bool = False
) -> tuple[int, list[str]]:
    """Delete images no provenance (or, with `only_bot_origin`, only Discord provenance), no
    prediction and no label refer to. Returns how many, and the store files they leave behind."""
    dropped = 0
    files: list[str] = []
    for image_id in image_ids:
        image = session.get(Image, image_id)
        if image is None:
            continue
        sources = list(session.scalars(select(Provenance.author).where(Provenance.image_id == image_id)))
        if only_bot_origin:
            if any(not (a or "").startswith(DISCORD_AUTHOR_PREFIX) for a in sources):
                continue
            still_predicted = session.scalar(
                select(func.count()).select_from(Prediction).where(Prediction.image_id == image_id)
            )
            labelled = session.scalar(
                select(func.count()).select_from(Label).where(Label.image_id == image_id)
            )
            if still_predicted or labelled:
                continue
        elif sources:
            continue
        files.append(image.sha256)
        files.extend(session.scalars(select(Face.crop_sha256).where(Face.image_id == image_id)))
        session.delete(image)
        dropped += 1
    session.flush()
    return dropped, files


def _delete_files(store: ImageStore | None, files: list[str], engine: Engine) -> None:
    if store is None or not files:
        return
    with session_scope(engine) as session:
        still = set(
            session.scalars(select(Image.sha256).where(Image.sha256.in_(files), Image.stored.is_(True)))
        )
        still |= set(session.scalars(select(Face.crop_sha256).where(Face.crop_sha256.in_(files))))
    for sha in files:
        if sha not in still:
            store.delete(sha)
