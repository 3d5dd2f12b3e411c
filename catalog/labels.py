"""The labels members' answers write on a prediction's face (or whole image): a `vote` label, a
`moderator` label, the scraped source label they are checked against, and the display name of a
choice. Shared by the votes and the review queue.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.memory import remember_label
from catalog.schema import LABEL_TRUST, Character, Label, LabelOrigin, Prediction, utcnow

# The labels a scrape or a folder import wrote; a vote that contradicts one goes to review.
SOURCE_ORIGINS = (
    LabelOrigin.comment_link,
    LabelOrigin.title_mention,
    LabelOrigin.subreddit,
    LabelOrigin.folder,
)
NOT_A_CHARACTER = "not a character"

Choice = int | None  # a character id, or None for "not a character"


def _target(prediction: Prediction):
    face_clause = (
        Label.face_id.is_(None) if prediction.face_id is None else Label.face_id == prediction.face_id
    )
    return (Label.image_id == prediction.image_id, face_clause)


def label_of(session: Session, prediction: Prediction, origin: LabelOrigin) -> Label | None:
    """The prediction's face's (or image's) label of one origin."""
    return session.scalar(select(Label).where(*_target(prediction), Label.origin == origin))


def source_label(session: Session, prediction: Prediction) -> Label | None:
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


def put_label(
    session: Session, prediction: Prediction, choice: Choice, origin: LabelOrigin, created_by: str
) -> Label:
    """Write (or overwrite) the prediction's label of `origin`."""
    label = label_of(session, prediction, origin)
    if label is None:
        label = Label(image_id=prediction.image_id, face_id=prediction.face_id, origin=origin)
        session.add(label)
    label.character_id = choice
    label.weight = LABEL_TRUST[origin]
    label.created_by = created_by
    label.created_at = utcnow()
    session.flush()
    # The face joins (or, for "not a character", leaves) the memory now, not at the next retrain.
    remember_label(session, prediction, choice, origin.value)
    return label


def choice_name(session: Session, choice: Choice) -> str:
    if choice is None:
        return NOT_A_CHARACTER
    character = session.get(Character, choice)
    return character.name if character is not None else f"character #{choice}"
