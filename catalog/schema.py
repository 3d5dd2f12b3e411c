"""The catalog's tables. Alembic migrations in `catalog/migrations` create them; never `create_all`."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class SourceKind(enum.StrEnum):
    subreddit = "subreddit"
    title_search = "title_search"
    comment_links = "comment_links"
    folder = "folder"


class ImageStatus(enum.StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"  # exact or near duplicate of `duplicate_of`; bytes not kept
    review = "review"  # kept, but a moderator must decide (near-dup across characters, several faces)
    rejected = "rejected"  # bytes not kept; `reject_reason` says why


class LabelOrigin(enum.StrEnum):
    """Ordered by trust, lowest first: a later origin overrides an earlier one."""

    comment_link = "comment_link"
    title_mention = "title_mention"
    subreddit = "subreddit"
    folder = "folder"
    vote = "vote"
    moderator = "moderator"


LABEL_TRUST: dict[LabelOrigin, float] = {
    LabelOrigin.comment_link: 0.6,
    LabelOrigin.title_mention: 0.75,
    LabelOrigin.subreddit: 0.9,
    LabelOrigin.folder: 0.95,
    LabelOrigin.vote: 0.97,
    LabelOrigin.moderator: 1.0,
}


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class ModelStatus(enum.StrEnum):
    candidate = "candidate"
    active = "active"
    retired = "retired"
    refused = "refused"


class ReviewStatus(enum.StrEnum):
    open = "open"
    approved = "approved"
    rejected = "rejected"


class Character(Base):
    __tablename__ = "characters"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    series: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    names: Mapped[list[CharacterName]] = relationship(
        back_populates="character", cascade="all, delete-orphan", order_by="CharacterName.id"
    )
    sources: Mapped[list[Source]] = relationship(
        back_populates="character", cascade="all, delete-orphan", order_by="Source.id"
    )

    @property
    def aliases(self) -> list[str]:
        return [n.text for n in self.names if not n.primary]


class CharacterName(Base):
    """The name and every alias of a character. `key` (casefolded, accents stripped) is unique
    across all characters, so a name can never point at two characters."""

    __tablename__ = "character_names"

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(100), unique=True)
    primary: Mapped[bool] = mapped_column(Boolean, default=False)

    character: Mapped[Character] = relationship(back_populates="names")


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("character_id", "kind", "subreddit", "query", name="uq_sources_identity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    kind: Mapped[SourceKind] = mapped_column(String(20))
    subreddit: Mapped[str | None] = mapped_column(String(40))
    # title_search: the search query (default: the character's names); comment_links: comma-separated
    # thread ids or a search query; folder: the folder path.
    query: Mapped[str | None] = mapped_column(String(500))
    flair: Mapped[str | None] = mapped_column(String(100))
    nsfw_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[str | None] = mapped_column(String(100))
    last_attempt_at: Mapped[datetime | None]  # the last scrape that tried this source
    last_success_at: Mapped[datetime | None]  # the last one that Reddit let list it whole
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    character: Mapped[Character] = relationship(back_populates="sources")


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    phash: Mapped[str | None] = mapped_column(String(16), index=True)
    dhash: Mapped[str | None] = mapped_column(String(16))
    # Crop-tolerant near-duplicate matching (scraper.dedup): pHash+dHash of five sub-crops, and a
    # 64x64 greyscale thumbnail that verifies hash candidates by normalized cross-correlation.
    crop_hashes: Mapped[str | None] = mapped_column(String(160))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    width: Mapped[int | None]
    height: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[ImageStatus] = mapped_column(String(10), index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    # A digest of the settings a rejection depended on (scraper.rejections): when they change,
    # the image is tried again.
    reject_settings: Mapped[str | None] = mapped_column(String(16))
    has_face: Mapped[bool | None] = mapped_column(Boolean)
    # True when the bytes are in the image store (accepted and review images).
    stored: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    provenance: Mapped[list[Provenance]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="Provenance.id"
    )
    faces: Mapped[list[Face]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="Face.index"
    )


class Provenance(Base):
    """Where an image came from, so that it can be traced and removed."""

    __tablename__ = "provenance"
    __table_args__ = (UniqueConstraint("image_id", "source_id", "post_id", "url", name="uq_provenance_seen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    character_id: Mapped[int | None] = mapped_column(ForeignKey("characters.id", ondelete="SET NULL"))
    post_id: Mapped[str | None] = mapped_column(String(20), index=True)
    comment_id: Mapped[str | None] = mapped_column(String(20))
    permalink: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    subreddit: Mapped[str | None] = mapped_column(String(40))
    author: Mapped[str | None] = mapped_column(String(40))
    score: Mapped[int | None]
    title: Mapped[str | None] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)

    image: Mapped[Image] = relationship(back_populates="provenance")


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("image_id", "index", name="uq_faces_image_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    x: Mapped[int]
    y: Mapped[int]
    w: Mapped[int]
    h: Mapped[int]
    crop_sha256: Mapped[str] = mapped_column(String(64))
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)

    image: Mapped[Image] = relationship(back_populates="faces")


class Label(Base):
    """A claim that an image (or one face in it) shows a character. `character_id` None means
    "not a character". The resolved label is the one with the most trusted origin."""

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint("image_id IS NOT NULL OR face_id IS NOT NULL", name="target"),
        UniqueConstraint("image_id", "face_id", "origin", name="uq_labels_target_origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    character_id: Mapped[int | None] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    origin: Mapped[LabelOrigin] = mapped_column(String(20))
    weight: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    """One answer the bot gave: one face (or the whole image) of one image in one message."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reply_message_id: Mapped[int | None] = mapped_column(BigInteger)
    author_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL"))
    face_index: Mapped[int | None]
    box: Mapped[dict[str, Any] | None]
    model_version: Mapped[str] = mapped_column(String(40))
    topk: Mapped[dict[str, Any]]
    labelled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The face's embedding under `model_version` (float16 bytes): a label that lands on this
    # prediction goes into that version's character memory at once (catalog/memory.py).
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    votes: Mapped[list[Vote]] = relationship(back_populates="prediction", cascade="all, delete-orphan")


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("prediction_id", "member_id", name="uq_votes_one_per_member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # None with `not_character` False is impossible; None with True means "not a character".
    character_id: Mapped[int | None] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    not_character: Mapped[bool] = mapped_column(Boolean, default=False)
    is_moderator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    prediction: Mapped[Prediction] = relationship(back_populates="votes")


class Review(Base):
    """The moderators' queue: near-duplicates across characters, multi-face crops, vote ties."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    face_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"))
    character_id: Mapped[int | None] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    guild_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[ReviewStatus] = mapped_column(String(10), default=ReviewStatus.open, index=True)
    resolved_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "priority", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(String(10), default=JobStatus.queued)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    requested_by: Mapped[str | None] = mapped_column(String(100))
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ModelVersion(Base):
    """Mirror of the registry folder, so that the bot, `/model info` and the worker can query it."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[ModelStatus] = mapped_column(String(10))
    parent: Mapped[str | None] = mapped_column(String(40))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]


class MemoryFace(Base):
    """One labelled face in a model version's character memory, appended as labels land (a scraped
    character, an import, a vote confirmed by quorum or a moderator). The bot polls rows past the
    last id it has seen. `embedding` NULL is a tombstone: the face leaves the memory."""

    __tablename__ = "memory_faces"
    __table_args__ = (Index("ix_memory_faces_version_id", "model_version", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(64))  # the face crop's (or whole image's) sha256
    character_id: Mapped[int | None] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(20))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GuildSettings(Base):
    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    threshold: Mapped[float | None] = mapped_column(Float)
    mod_role_id: Mapped[int | None] = mapped_column(BigInteger)
    auto_classify: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IdentifySlot(Base):
    """When the next gateway IDENTIFY of a concurrency bucket may be sent (epoch seconds): the bot
    processes of one application share Discord's pacing through this row (catalog/identify.py)."""

    __tablename__ = "identify_slots"

    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_at: Mapped[float] = mapped_column(Float)
