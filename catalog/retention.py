"""Privacy and retention: forgetting a member (`namae forget`, the bot's data-deletion path),
undoing the record of a reply that was never sent, and purging unlabelled predictions past the
retention period, each with the posted pictures nothing else needs (rows and store files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.memory import forget_keys
from catalog.predictions import DISCORD_AUTHOR_PREFIX, discord_author
from catalog.schema import Face, Image, Label, Prediction, Provenance, Vote, utcnow
from catalog.store import ImageStore


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
        author = discord_author(member_id)
        image_ids = set(session.scalars(select(Provenance.image_id).where(Provenance.author == author)))
        session.execute(delete(Provenance).where(Provenance.author == author))
        counts.images, counts.files = _drop_unreferenced(session, image_ids)
        forget_keys(session, counts.files)
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
