"""Members' votes on the bot's answers and how votes become labels.

Rules (DESIGN.md, "Labels"):
- one vote per member per prediction; a changed vote replaces the old one (an upsert, race-free on
  SQLite and PostgreSQL);
- a choice that reaches the quorum and leads every other choice becomes a `vote` label;
- a moderator's vote alone becomes a `moderator` label and settles any open review;
- a tie at the quorum, or a winning choice that contradicts the image's source label (a scraped
  subreddit, title or comment label), goes to the moderators' review queue (`catalog.reviews`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from catalog.db import is_sqlite, session_scope
from catalog.errors import CatalogError
from catalog.labels import Choice, choice_name, label_of, put_label, source_label
from catalog.predictions import DISCORD_AUTHOR_PREFIX, PredictionGone, WrongGuild
from catalog.reviews import REVIEW_SOURCE, REVIEW_TIE, close_reviews, open_review
from catalog.schema import Character, LabelOrigin, Prediction, ReviewStatus, Vote, utcnow


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
        put_label(session, prediction, choice, LabelOrigin.moderator, f"{DISCORD_AUTHOR_PREFIX}{member_id}")
        prediction.labelled = True
        close_reviews(session, prediction.id, member_id, ReviewStatus.approved)
        return "moderator", None
    if label_of(session, prediction, LabelOrigin.moderator) is not None:
        return "counted", None  # a moderator already decided; votes are only shown

    ranked = _counts(session, prediction.id).most_common()
    leader, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if top < quorum:
        return "counted", None
    if top == runner_up:
        tied = [c for c, n in ranked if n == top]
        names = ", ".join(choice_name(session, c) for c in tied)
        return "review", open_review(
            session, prediction, REVIEW_TIE, f"votes tie {top}-{top} between {names}", tied[0]
        )
    source = source_label(session, prediction)
    if source is not None and source.character_id != leader:
        reason = (
            f"{top} votes say {choice_name(session, leader)}, the {source.origin} label says "
            f"{choice_name(session, source.character_id)}"
        )
        return "review", open_review(session, prediction, REVIEW_SOURCE, reason, leader)
    put_label(session, prediction, leader, LabelOrigin.vote, f"vote:{prediction.id}")
    prediction.labelled = True
    return "labelled", None


def _tally(session: Session, prediction: Prediction) -> Tally:
    counts = [(choice_name(session, c), n) for c, n in _counts(session, prediction.id).most_common()]
    label_name = None
    if prediction.labelled and prediction.image_id is not None:
        for origin in (LabelOrigin.moderator, LabelOrigin.vote):
            label = label_of(session, prediction, origin)
            if label is not None:
                label_name = choice_name(session, label.character_id)
                break
    return Tally(prediction.id, counts, prediction.labelled, label_name)


def tallies(engine: Engine, prediction_ids: list[int]) -> dict[int, Tally]:
    with session_scope(engine) as session:
        predictions = session.scalars(select(Prediction).where(Prediction.id.in_(prediction_ids)))
        return {p.id: _tally(session, p) for p in predictions}
