"""The record of members' corrections without Discord: recording predictions (catalog.predictions),
one vote per member, quorum, moderator (catalog.votes), review (catalog.reviews), forget
(catalog.retention), character search (catalog.characters)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select

from catalog.characters import NewCharacter, add_character, resolve_labels, search_characters
from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.predictions import (
    AnswerRecord,
    ImageRecord,
    MessageContext,
    PredictionGone,
    WrongGuild,
    record_predictions,
)
from catalog.retention import forget_member
from catalog.reviews import open_reviews, resolve_review
from catalog.schema import Face, Image, Label, LabelOrigin, Prediction, Review, ReviewStatus, Vote
from catalog.store import ImageStore, sha256_of
from catalog.votes import cast_vote
from media.boxes import same_face

GUILD = 111
OTHER_GUILD = 222
AUTHOR = 900


@pytest.fixture
def characters(engine: Engine) -> dict[str, int]:
    return {
        name: add_character(engine, NewCharacter(name=name, aliases=aliases))
        for name, aliases in [("Aiko Hoshino", ["Aiko"]), ("Ren Tanaka", []), ("Mika Sato", [])]
    }


def _record(engine: Engine, store: ImageStore, *, data: bytes = b"png-bytes", faces: int = 1) -> list[int]:
    answers = [
        AnswerRecord(
            candidates=[("aiko_hoshino", 0.8), ("ren_tanaka", 0.15)],
            unknown=False,
            face_index=i,
            box=(10 + 40 * i, 10, 30, 30),
            crop_png=f"crop-{i}".encode(),
            tag=f"1.{i + 1}",
        )
        for i in range(faces)
    ]
    image = ImageRecord(
        sha256=sha256_of(data), answers=answers, data=data, width=100, height=60, format="png"
    )
    context = MessageContext(GUILD, 5, 6, AUTHOR, "https://discord.com/channels/111/5/6", "v0001-test")
    return record_predictions(engine, store, context, [image], same_face=same_face)[0]


@pytest.fixture
def store(data_dir) -> ImageStore:
    return ImageStore(data_dir / "images")


def test_record_stores_image_faces_and_predictions(engine: Engine, store: ImageStore) -> None:
    ids = _record(engine, store, faces=2)
    assert len(ids) == 2
    with session_scope(engine) as session:
        image = session.scalar(select(Image))
        assert image.stored and image.has_face
        assert store.has(image.sha256)
        faces = list(session.scalars(select(Face).order_by(Face.index)))
        assert [f.index for f in faces] == [0, 1]
        assert all(store.has(f.crop_sha256) for f in faces)
        assert image.provenance[0].url.endswith("/111/5/6")
        prediction = session.get(Prediction, ids[1])
        assert prediction.face_id == faces[1].id and prediction.topk["tag"] == "1.2"


def test_labels_resolve_by_slug_and_search(engine: Engine, characters: dict[str, int]) -> None:
    resolved = resolve_labels(engine, ["aiko_hoshino", "nobody_known"])
    assert resolved["aiko_hoshino"] == (characters["Aiko Hoshino"], "Aiko Hoshino")
    assert resolved["nobody_known"] is None
    assert [name for _, name in search_characters(engine, "aik")] == ["Aiko Hoshino"]
    assert [name for _, name in search_characters(engine, "a")][:1] == ["Aiko Hoshino"]
    assert search_characters(engine, "%") == []


def test_changed_vote_replaces_and_quorum_labels(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    ren, aiko = characters["Ren Tanaka"], characters["Aiko Hoshino"]
    first = cast_vote(engine, prediction_id=pid, member_id=1, guild_id=GUILD, character_id=ren, quorum=2)
    assert first.status == "counted" and not first.replaced
    again = cast_vote(engine, prediction_id=pid, member_id=1, guild_id=GUILD, character_id=aiko, quorum=2)
    assert again.replaced and again.tally.counts == [("Aiko Hoshino", 1)]
    second = cast_vote(engine, prediction_id=pid, member_id=2, guild_id=GUILD, character_id=aiko, quorum=2)
    assert second.status == "labelled" and second.tally.label == "Aiko Hoshino"
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote)) == 2
        label = session.scalar(select(Label))
        assert label.origin == LabelOrigin.vote and label.character_id == aiko and label.face_id is not None


def test_tie_goes_to_review_and_moderator_settles(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    ren, mika = characters["Ren Tanaka"], characters["Mika Sato"]
    for member, choice in [(1, ren), (2, mika), (3, ren), (4, mika)]:
        outcome = cast_vote(engine, prediction_id=pid, member_id=member, guild_id=GUILD, character_id=choice)
    assert outcome.status == "review"
    items, total = open_reviews(engine, GUILD)
    assert total == 1 and "tie" in items[0].reason
    assert open_reviews(engine, OTHER_GUILD)[1] == 0
    with pytest.raises(WrongGuild):
        resolve_review(engine, items[0].id, approve=True, moderator_id=9, guild_id=OTHER_GUILD)
    mod = cast_vote(
        engine, prediction_id=pid, member_id=9, guild_id=GUILD, not_character=True, is_moderator=True
    )
    assert mod.status == "moderator"
    with session_scope(engine) as session:
        assert session.scalar(select(Review)).status == ReviewStatus.approved
        label = session.scalar(select(Label).where(Label.origin == LabelOrigin.moderator))
        assert label.character_id is None and label.weight == 1.0


def test_disagreement_with_source_label_goes_to_review(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    with session_scope(engine) as session:
        prediction = session.get(Prediction, pid)
        session.add(
            Label(
                image_id=prediction.image_id,
                character_id=characters["Aiko Hoshino"],
                origin=LabelOrigin.subreddit,
                weight=0.9,
            )
        )
    for member in (1, 2):
        outcome = cast_vote(
            engine, prediction_id=pid, member_id=member, guild_id=GUILD, character_id=characters["Mika Sato"]
        )
    assert outcome.status == "review" and outcome.review_id is not None
    assert resolve_review(engine, outcome.review_id, approve=True, moderator_id=9, guild_id=GUILD).startswith(
        "approved"
    )
    with session_scope(engine) as session:
        assert (
            session.scalar(select(Label).where(Label.origin == LabelOrigin.moderator)).character_id
            == (characters["Mika Sato"])
        )


def test_bad_votes_are_refused(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    with pytest.raises(WrongGuild):
        cast_vote(engine, prediction_id=pid, member_id=1, guild_id=OTHER_GUILD, not_character=True)
    with pytest.raises(PredictionGone):
        cast_vote(engine, prediction_id=pid + 1000, member_id=1, guild_id=GUILD, not_character=True)
    with pytest.raises(CatalogError):
        cast_vote(engine, prediction_id=pid, member_id=1, guild_id=GUILD)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote)) == 0


def test_simultaneous_votes_one_per_member(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    aiko = characters["Aiko Hoshino"]
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def vote(member: int) -> None:
        barrier.wait()
        try:
            cast_vote(
                engine, prediction_id=pid, member_id=member, guild_id=GUILD, character_id=aiko, quorum=3
            )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    # The same member six times at once, and six other members at once.
    threads = [threading.Thread(target=vote, args=(1,)) for _ in range(6)]
    threads += [threading.Thread(target=vote, args=(100 + i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(engine) as session:
        members = list(session.scalars(select(Vote.member_id).where(Vote.prediction_id == pid)))
        assert sorted(members) == [1, 100, 101, 102, 103, 104, 105]
        assert session.scalar(select(func.count()).select_from(Label)) == 1


def test_forget_member_deletes_votes_predictions_and_images(engine: Engine, store, characters) -> None:
    (pid,) = _record(engine, store)
    cast_vote(engine, prediction_id=pid, member_id=AUTHOR, guild_id=GUILD, not_character=True)
    with session_scope(engine) as session:
        sha = session.scalar(select(Image.sha256))
    counts = forget_member(engine, AUTHOR, store)
    assert counts.as_dict() == {"votes": 1, "predictions": 1, "images": 1}
    assert not store.has(sha)
    with session_scope(engine) as session:
        for table in (Vote, Prediction, Image, Face):
            assert session.scalar(select(func.count()).select_from(table)) == 0
