"""The moderators' review queue for members' corrections: opening a review (a tie at the quorum,
votes against the source label), closing it when a moderator decides, the guild's open page, and
approving or rejecting one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.labels import Choice, choice_name, put_label
from catalog.predictions import DISCORD_AUTHOR_PREFIX, WrongGuild
from catalog.schema import LabelOrigin, Prediction, Review, ReviewStatus, utcnow

REVIEW_TIE = "vote_tie"
REVIEW_SOURCE = "vote_disagrees_with_source"


def open_review(session: Session, prediction: Prediction, kind: str, reason: str, proposed: Choice) -> int:
    """Queue the prediction for a moderator (or update its open review); returns the review id."""
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


def close_reviews(session: Session, prediction_id: int, moderator_id: int, status: ReviewStatus) -> None:
    for review in session.scalars(
        select(Review).where(Review.prediction_id == prediction_id, Review.status == ReviewStatus.open)
    ):
        review.status = status
        review.resolved_by = moderator_id
        review.resolved_at = utcnow()


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
                    choice_name(session, review.character_id),
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
                put_label(
                    session,
                    prediction,
                    review.character_id,
                    LabelOrigin.moderator,
                    f"{DISCORD_AUTHOR_PREFIX}{moderator_id}",
                )
                prediction.labelled = True
        return f"approved: {choice_name(session, review.character_id)}" if approve else "rejected"
