"""The character memory's shared record: labelled face embeddings per model version, appended as
labels land, read back by whoever answers (the bot polls rows past the last id it has seen).

Rows hold bytes only (float16 vectors, `models.memory.encode_embedding`); the index that searches
them lives in `models/memory.py`. A row without an embedding is a tombstone: the face leaves that
version's memory (it was relabelled "not a character", or its member asked to be forgotten). The
memory of the faces a version was trained on travels in the registry with the version itself;
these rows are what landed after (or besides) that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.jobs import JobKind, queue_in
from catalog.schema import Character, Face, MemoryFace, ModelStatus, ModelVersion, Prediction

POLL_BATCH = 5000


@dataclass(frozen=True)
class NewMemoryFace:
    key: str  # the face crop's sha256, or the whole image's when no face was found
    character_id: int | None  # None only for a tombstone
    origin: str
    embedding: bytes | None  # None: a tombstone


@dataclass(frozen=True)
class MemoryRow:
    id: int
    key: str
    character_id: int | None
    character: str | None  # the character's name; None for a tombstone
    origin: str
    embedding: bytes | None  # None: the key leaves the memory


def add_faces(session: Session, model_version: str, faces: Iterable[NewMemoryFace]) -> int:
    """Append rows to `model_version`'s memory (in the caller's transaction)."""
    count = 0
    for face in faces:
        if face.embedding is not None and face.character_id is None:
            raise ValueError("a memory face with an embedding needs a character")
        session.add(
            MemoryFace(
                model_version=model_version,
                key=face.key,
                character_id=face.character_id,
                origin=face.origin,
                embedding=face.embedding,
            )
        )
        count += 1
    session.flush()
    return count


def rows_since(
    engine: Engine, model_version: str, after_id: int = 0, *, limit: int = POLL_BATCH
) -> list[MemoryRow]:
    """`model_version`'s rows with an id above `after_id`, oldest first. A row of a character that
    was removed reads as a tombstone, so a removed character is no longer named from the memory."""
    with session_scope(engine) as session:
        result = session.execute(
            select(
                MemoryFace.id,
                MemoryFace.key,
                MemoryFace.character_id,
                Character.name,
                Character.active,
                MemoryFace.origin,
                MemoryFace.embedding,
            )
            .outerjoin(Character, Character.id == MemoryFace.character_id)
            .where(MemoryFace.model_version == model_version, MemoryFace.id > after_id)
            .order_by(MemoryFace.id)
            .limit(limit)
        ).all()
    return [
        MemoryRow(
            row.id,
            row.key,
            row.character_id,
            row.name if row.active else None,
            row.origin,
            row.embedding if row.active and row.embedding is not None else None,
        )
        for row in result
    ]


def last_row_id(engine: Engine, model_version: str) -> int:
    with session_scope(engine) as session:
        return int(
            session.scalar(select(func.max(MemoryFace.id)).where(MemoryFace.model_version == model_version))
            or 0
        )


def known_keys(engine: Engine, model_version: str) -> set[str]:
    """Keys that have a live (non-tombstone) latest row in `model_version`'s memory."""
    latest: dict[str, bool] = {}
    with session_scope(engine) as session:
        for key, embedding_is_null in session.execute(
            select(MemoryFace.key, MemoryFace.embedding.is_(None))
            .where(MemoryFace.model_version == model_version)
            .order_by(MemoryFace.id)
        ):
            latest[key] = not embedding_is_null
    return {key for key, live in latest.items() if live}


def face_counts(engine: Engine, model_version: str) -> dict[int, int]:
    """Live faces per character id among `model_version`'s rows (not the trained memory)."""
    latest: dict[str, int | None] = {}
    with session_scope(engine) as session:
        for key, character_id, embedding_is_null in session.execute(
            select(MemoryFace.key, MemoryFace.character_id, MemoryFace.embedding.is_(None))
            .where(MemoryFace.model_version == model_version)
            .order_by(MemoryFace.id)
        ):
            latest[key] = None if embedding_is_null else character_id
    counts: dict[int, int] = {}
    for character_id in latest.values():
        if character_id is not None:
            counts[character_id] = counts.get(character_id, 0) + 1
    return counts


def prediction_key(session: Session, prediction: Prediction) -> str:
    """What a prediction's face is called in the memory: its crop's sha256, else the image's."""
    if prediction.face_id is not None:
        crop = session.scalar(select(Face.crop_sha256).where(Face.id == prediction.face_id))
        if crop is not None:
            return crop
    return prediction.image_sha256


def remember_label(session: Session, prediction: Prediction, character_id: int | None, origin: str) -> bool:
    """A vote or moderator label just landed on `prediction`: its face joins the memory of the
    version that answered it (or leaves it, for "not a character"). False when the prediction
    kept no embedding: then a memory job is queued, which embeds the labelled face's stored crop
    with the active version (`models.answer`: a face member 1 of several decided alone keeps no
    vector of the memory's width)."""
    if prediction.embedding is None:
        if character_id is not None:
            queue_in(session, JobKind.memory, requested_by=f"label:{origin}")
        return False
    key = prediction_key(session, prediction)
    embedding = prediction.embedding if character_id is not None else None
    add_faces(session, prediction.model_version, [NewMemoryFace(key, character_id, origin, embedding)])
    return True


def forget_keys(session: Session, keys: Iterable[str], origin: str = "forgotten") -> int:
    """Remove faces from every memory: their rows are deleted and a tombstone is appended for each
    version that had them and for the active version (whose trained memory may hold them too)."""
    keys = sorted(set(keys))
    if not keys:
        return 0
    versions = set(
        session.scalars(select(MemoryFace.model_version).where(MemoryFace.key.in_(keys)).distinct())
    )
    active = session.scalar(select(ModelVersion.version).where(ModelVersion.status == ModelStatus.active))
    if active is not None:
        versions.add(active)
    session.execute(delete(MemoryFace).where(MemoryFace.key.in_(keys)))
    for version in sorted(versions):
        add_faces(session, version, [NewMemoryFace(key, None, origin, None) for key in keys])
    return len(keys) * len(versions)
