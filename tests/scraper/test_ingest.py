"""The cleaning path: rejections with reasons, exact and near dedup, faces and labels, crash safety."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageEnhance
from sqlalchemy import Engine, func, select, text

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.predictions import AnswerRecord, ImageRecord, MessageContext, record_predictions
from catalog.schema import (
    LABEL_TRUST,
    Face,
    Image,
    ImageStatus,
    Label,
    LabelOrigin,
    Prediction,
    Provenance,
    Review,
)
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from media.boxes import same_face
from media.faces import FaceDetector
from sandbox.characters.render import render_character, render_scene
from sandbox.characters.traits import make_characters
from scraper.candidates import ImageOrigin
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.outcomes import OutcomeKind
from scraper.rejections import reject_code
from tests.hostile_files import EXPECTED, HOSTILE_CASES

SPECS = make_characters(3, seed=11)


def jpeg(image: PILImage.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def portrait(spec_index: int, variant: int) -> bytes:
    image, _ = render_character(SPECS[spec_index], np.random.default_rng([5, spec_index, variant]))
    return jpeg(image)


def near_copy(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    return jpeg(ImageEnhance.Brightness(rgb).enhance(1.05).resize((width - 8, height - 8)), quality=84)


class Catalog:
    """An ingestor over a fresh catalog with three characters."""

    def __init__(self, settings: Settings, engine: Engine, cascade_path: Path) -> None:
        self.settings = settings
        self.engine = engine
        self.store = ImageStore.from_settings(settings)
        detector = FaceDetector(cascade_path, settings.faces)
        self.ingestor = Ingestor(engine, self.store, settings, detector, HashIndex.load(engine))
        self.characters = [add_character(engine, NewCharacter(name=spec.name)) for spec in SPECS]

    def origin(self, url: str, character: int = 0, **extra: object) -> ImageOrigin:
        values: dict[str, object] = {
            "url": url,
            "source_id": None,
            "character_id": self.characters[character],
            "origin": LabelOrigin.subreddit,
            "post_id": url.rsplit("/", 1)[-1][:20],
        }
        values.update(extra)
        return ImageOrigin(**values)  # type: ignore[arg-type]

    def stored_files(self) -> set[str]:
        return set(self.store.names())

    def referenced_files(self) -> set[str]:
        with session_scope(self.engine) as session:
            images = set(session.scalars(select(Image.sha256).where(Image.stored.is_(True))))
            crops = set(session.scalars(select(Face.crop_sha256)))
        return images | crops


@pytest.fixture
def catalog(settings: Settings, engine: Engine, cascade_path: Path) -> Catalog:
    """On SQLite and on PostgreSQL (when a server can be started)."""
    return Catalog(settings, engine, cascade_path)


@pytest.fixture
def sqlite_catalog(settings: Settings, sqlite_engine: Engine, cascade_path: Path) -> Catalog:
    return Catalog(settings, sqlite_engine, cascade_path)


def test_hostile_files_are_rejected_with_their_reason(catalog: Catalog) -> None:
    for name, make in HOSTILE_CASES.items():
        outcome = catalog.ingestor.ingest_bytes(make(), catalog.origin(f"https://i.redd.it/{name}"))
        expected = EXPECTED[name]
        if expected is None:
            assert outcome.kind in (OutcomeKind.new, OutcomeKind.duplicate, OutcomeKind.near_duplicate), name
            continue
        assert outcome.kind == OutcomeKind.rejected, name
        assert outcome.reason == expected, (name, outcome.reason, outcome.detail)
    with session_scope(catalog.engine) as session:
        rejected = {
            reject_code(row.reject_reason): row
            for row in session.scalars(select(Image).where(Image.status == ImageStatus.rejected))
        }
        for image in rejected.values():
            assert not image.stored
            assert image.reject_reason and ": " in image.reject_reason  # "code: sentence"
            assert image.provenance, "a rejection keeps where it came from"
            assert not catalog.store.has(image.sha256)
        expected_reasons = {reason for reason in EXPECTED.values() if reason is not None}
        assert set(rejected) == expected_reasons
    # Nothing half-stored: every file is named by a row and every stored row has its file.
    assert catalog.stored_files() == catalog.referenced_files()
    assert catalog.store.check(catalog.engine).clean


def test_single_face_gets_a_labelled_crop(catalog: Catalog) -> None:
    data = portrait(0, 1)
    outcome = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/one.jpg"))
    assert outcome.kind == OutcomeKind.new
    assert outcome.faces == 1
    with session_scope(catalog.engine) as session:
        image = session.get(Image, outcome.image_id)
        assert image is not None
        assert image.status == ImageStatus.accepted
        assert image.has_face and image.stored
        assert image.sha256 == sha256_of(data)
        assert catalog.store.read(image.sha256) == data
        (face,) = image.faces
        assert not face.needs_review
        crop = PILImage.open(io.BytesIO(catalog.store.read(face.crop_sha256)))
        assert crop.size == (catalog.settings.faces.crop_size,) * 2
        labels = session.scalars(select(Label).where(Label.image_id == image.id)).all()
        assert {(label.face_id, label.character_id) for label in labels} == {
            (None, catalog.characters[0]),
            (face.id, catalog.characters[0]),
        }
        assert all(label.weight == LABEL_TRUST[LabelOrigin.subreddit] for label in labels)


def test_the_bot_records_a_scraped_picture_on_the_scrapers_rows(catalog: Catalog) -> None:
    """One write path (catalog.images): a member posting a picture the scraper kept adds no second
    Image; an answer on the same face (a box a few pixels off) points at the scraped Face, so a vote
    labels it; a face the scraper did not find is added after it."""
    data = portrait(0, 2)
    outcome = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/two.jpg"))
    with session_scope(catalog.engine) as session:
        (face,) = session.get(Image, outcome.image_id).faces
        scraped = (face.id, face.x, face.y, face.w, face.h)
    face_id, x, y, w, h = scraped
    answers = [
        AnswerRecord([("a", 0.9)], False, 0, (x + 3, y - 2, w, h + 4), b"bot crop of the same face"),
        AnswerRecord([("b", 0.7)], False, 1, (x + w + 50, y, w, h), b"bot crop of another face"),
    ]
    record = ImageRecord(sha256_of(data), answers, data=data, width=10, height=10, format="jpeg")
    context = MessageContext(1, 2, 3, 4, "https://discord.com/channels/1/2/3", "v0001")
    ids = record_predictions(catalog.engine, catalog.store, context, [record], same_face=same_face)[0]
    with session_scope(catalog.engine) as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 1
        faces = session.scalars(select(Face).order_by(Face.index)).all()
        assert [f.index for f in faces] == [0, 1] and faces[0].id == face_id
        assert [session.get(Prediction, i).face_id for i in ids] == [face_id, faces[1].id]
        assert {p.author for p in session.get(Image, outcome.image_id).provenance} == {None, "discord:4"}
    assert catalog.referenced_files() <= catalog.stored_files()


def test_several_faces_need_review(catalog: Catalog) -> None:
    scene, boxes = render_scene(list(SPECS[:3]), np.random.default_rng(3), size=(768, 256))
    outcome = catalog.ingestor.ingest_bytes(jpeg(scene), catalog.origin("https://i.redd.it/group.jpg"))
    assert outcome.kind == OutcomeKind.new
    assert outcome.faces >= 2, "the cascade should find at least two of the three faces"
    with session_scope(catalog.engine) as session:
        image = session.get(Image, outcome.image_id)
        assert image is not None and image.status == ImageStatus.review
        assert all(face.needs_review for face in image.faces)
        assert session.scalar(select(func.count(Label.id)).where(Label.face_id.is_not(None))) == 0
        reviews = session.scalars(select(Review).where(Review.image_id == image.id)).all()
        assert [r.kind for r in reviews] == ["multiple_faces"]
    assert len(boxes) == 3


def test_no_face_keeps_the_whole_image_flagged(catalog: Catalog) -> None:
    rng = np.random.default_rng(9)
    pixels = (rng.random((120, 160, 3)) * 60 + np.array([40, 120, 200])).astype(np.uint8)
    outcome = catalog.ingestor.ingest_bytes(
        jpeg(PILImage.fromarray(pixels)), catalog.origin("https://i.redd.it/sky.jpg")
    )
    assert outcome.kind == OutcomeKind.new and outcome.faces == 0
    with session_scope(catalog.engine) as session:
        image = session.get(Image, outcome.image_id)
        assert image is not None and image.stored and image.has_face is False
        assert image.status == ImageStatus.accepted
        labels = session.scalars(select(Label).where(Label.image_id == image.id)).all()
        assert [(label.face_id, label.character_id) for label in labels] == [(None, catalog.characters[0])]


def test_exact_duplicates_add_provenance_only(catalog: Catalog) -> None:
    data = portrait(1, 2)
    first = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/a.jpg", 1))
    again = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/a.jpg", 1))
    second = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.imgur.com/b.jpg", 1))
    assert first.kind == OutcomeKind.new
    assert again.kind == OutcomeKind.known  # the same post and URL: nothing to do
    assert second.kind == OutcomeKind.duplicate and second.image_id == first.image_id
    with session_scope(catalog.engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 1
        urls = session.scalars(select(Provenance.url).order_by(Provenance.id)).all()
        assert urls == ["https://i.redd.it/a.jpg", "https://i.imgur.com/b.jpg"]
        assert session.scalar(select(func.count(Review.id))) == 0
    # The same bytes posted as another character: kept once, queued for a moderator with a row
    # per character, whichever claim came first; the first label stays, the second joins it in
    # its own origin's slot.
    other = catalog.ingestor.ingest_bytes(
        data, catalog.origin("https://i.redd.it/c.jpg", 2, origin=LabelOrigin.title_mention)
    )
    assert other.kind == OutcomeKind.duplicate and other.reviews == 2
    with session_scope(catalog.engine) as session:
        image = session.get(Image, first.image_id)
        assert image is not None and image.status == ImageStatus.review
        reviews = session.scalars(select(Review).order_by(Review.character_id)).all()
        assert [(r.image_id, r.character_id) for r in reviews] == [
            (first.image_id, catalog.characters[1]),
            (first.image_id, catalog.characters[2]),
        ]
        labels = session.execute(
            select(Label.origin, Label.character_id).where(
                Label.image_id == image.id, Label.face_id.is_(None)
            )
        ).all()
        assert sorted(labels) == [
            (LabelOrigin.subreddit, catalog.characters[1]),
            (LabelOrigin.title_mention, catalog.characters[2]),
        ]


def test_near_duplicates_same_character_dropped_other_character_reviewed(catalog: Catalog) -> None:
    original = portrait(0, 7)
    edited = near_copy(original)
    assert edited != original
    first = catalog.ingestor.ingest_bytes(original, catalog.origin("https://i.redd.it/orig.jpg", 0))
    same = catalog.ingestor.ingest_bytes(edited, catalog.origin("https://i.redd.it/edit.jpg", 0))
    assert same.kind == OutcomeKind.near_duplicate
    with session_scope(catalog.engine) as session:
        row = session.get(Image, same.image_id)
        assert row is not None
        assert row.status == ImageStatus.duplicate and row.duplicate_of_id == first.image_id
        assert not row.stored and not catalog.store.has(row.sha256)
        assert [p.url for p in row.provenance] == ["https://i.redd.it/edit.jpg"]

    cross = catalog.ingestor.ingest_bytes(near_copy(edited), catalog.origin("https://i.redd.it/x.jpg", 1))
    assert cross.kind == OutcomeKind.review
    with session_scope(catalog.engine) as session:
        row = session.get(Image, cross.image_id)
        assert row is not None and row.status == ImageStatus.review and row.stored
        review = session.scalars(select(Review).where(Review.image_id == row.id)).one()
        assert review.kind == "near_duplicate_other_character"
        assert review.character_id == catalog.characters[1]
        assert review.reason.endswith(f"labelled as character {catalog.characters[0]}")
        # The other side too, whichever came first.
        original = session.get(Image, first.image_id)
        assert original is not None and original.status == ImageStatus.review
        mirror = session.scalars(select(Review).where(Review.image_id == original.id)).one()
        assert (mirror.kind, mirror.character_id) == (review.kind, catalog.characters[0])
    # A fresh index loaded from the catalog makes the same decisions (it is persisted there).
    reloaded = HashIndex.load(catalog.engine)
    assert len(reloaded) == 2
    assert len(catalog.ingestor.index) == 2


def test_greyscale_pages_rejected_when_configured(catalog: Catalog) -> None:
    catalog.settings.images.reject_greyscale = True
    grey = PILImage.open(io.BytesIO(portrait(2, 3))).convert("L")
    outcome = catalog.ingestor.ingest_bytes(jpeg(grey), catalog.origin("https://i.redd.it/manga.jpg", 2))
    assert outcome.kind == OutcomeKind.rejected and outcome.reason == "greyscale"


def test_failed_commit_leaves_no_row_and_only_an_orphan_file(sqlite_catalog: Catalog) -> None:
    """A database failure mid-transaction (here a SQLite trigger refusing provenance rows) rolls
    the image back; its bytes may remain as an orphan, which the store check removes."""
    catalog = sqlite_catalog
    with catalog.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_provenance BEFORE INSERT ON provenance "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        )
    data = portrait(1, 9)
    with pytest.raises(Exception, match="disk on fire"):
        catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/fire.jpg", 1))
    with session_scope(catalog.engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 0
        assert session.scalar(select(func.count(Face.id))) == 0
    assert len(catalog.ingestor.index) == 0  # the index only learns committed images
    report = catalog.store.check(catalog.engine, fix=True)
    assert report.missing == []
    assert sha256_of(data) in report.orphans
    assert catalog.stored_files() == set()
    with catalog.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_provenance"))
    retried = catalog.ingestor.ingest_bytes(data, catalog.origin("https://i.redd.it/fire.jpg", 1))
    assert retried.kind == OutcomeKind.new
    assert catalog.stored_files() == catalog.referenced_files()
