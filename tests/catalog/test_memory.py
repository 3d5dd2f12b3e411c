"""The character memory's catalog rows: labels landing by vote or moderator, tombstones, forgetting,
and a running answerer's memory following them (models.memory_feed)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from catalog.characters import NewCharacter, add_character, remove_character
from catalog.db import session_scope
from catalog.memory import NewMemoryFace, add_faces, face_counts, known_keys, rows_since
from catalog.predictions import AnswerRecord, ImageRecord, MessageContext, record_predictions
from catalog.retention import forget_member
from catalog.store import ImageStore, sha256_of
from catalog.votes import cast_vote
from media.boxes import same_face
from models.memory import CharacterMemory, MemoryEntry, encode_embedding
from models.memory_feed import MemoryFeed
from models.open_world import OpenWorld
from models.openset import OpenSetThresholds

VERSION = "v0001-20260101T0000"
GUILD, AUTHOR, DIM = 111, 900, 8


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _world(labels: list[str]) -> OpenWorld:
    memory = CharacterMemory(DIM)
    memory.add(MemoryEntry(f"t{i}", label, "training", _vector(i)) for i, label in enumerate(labels * 3))
    thresholds = OpenSetThresholds(
        sharpness=10, name=0.5, pair=0.8, known=0.0, not_character=-1.0, min_examples=2
    )
    return OpenWorld(labels, thresholds, memory)


def _predict(engine: Engine, store: ImageStore, seed: int) -> int:
    data = f"picture-{seed}".encode()
    answer = AnswerRecord(
        candidates=[("Aiko Hoshino", 0.4)], unknown=True, face_index=0, box=(1, 1, 20, 20),
        crop_png=f"crop-{seed}".encode(), embedding=encode_embedding(_vector(100 + seed)), kind="stranger",
    )  # fmt: skip
    image = ImageRecord(
        sha256=sha256_of(data), answers=[answer], data=data, width=50, height=50, format="png"
    )
    context = MessageContext(GUILD, 5, seed, AUTHOR, f"https://discord.com/channels/111/5/{seed}", VERSION)
    return record_predictions(engine, store, context, [image], same_face=same_face)[0][0]


@pytest.fixture
def store(data_dir) -> ImageStore:
    return ImageStore(data_dir / "images")


def test_a_quorum_puts_the_face_in_the_memory_and_the_feed_names_a_new_character(
    engine: Engine, store: ImageStore
) -> None:
    add_character(engine, NewCharacter(name="Aiko Hoshino"))
    newcomer = add_character(engine, NewCharacter(name="Nene Kusanagi"))
    world = _world(["aiko_hoshino", "ren_tanaka"])
    feed = MemoryFeed(engine, world, VERSION)
    assert "Nene Kusanagi" not in world.characters()
    predictions = [_predict(engine, store, seed) for seed in range(2)]
    for prediction in predictions:
        cast_vote(
            engine, prediction_id=prediction, member_id=1, guild_id=GUILD, character_id=newcomer, quorum=2
        )
        assert known_keys(engine, VERSION) == set() or len(known_keys(engine, VERSION)) < 2
        outcome = cast_vote(
            engine, prediction_id=prediction, member_id=2, guild_id=GUILD, character_id=newcomer, quorum=2
        )
        assert outcome.status == "labelled"
    assert face_counts(engine, VERSION) == {newcomer: 2}
    assert feed.poll() == 2
    assert world.characters()["Nene Kusanagi"] == 2  # named from 2 examples (min_examples = 2 here)
    assert feed.poll() == 0  # nothing new


def test_a_moderator_saying_not_a_character_removes_the_face(engine: Engine, store: ImageStore) -> None:
    aiko = add_character(engine, NewCharacter(name="Aiko Hoshino"))
    prediction = _predict(engine, store, 7)
    cast_vote(
        engine, prediction_id=prediction, member_id=1, guild_id=GUILD, character_id=aiko, is_moderator=True
    )
    assert len(known_keys(engine, VERSION)) == 1
    cast_vote(
        engine, prediction_id=prediction, member_id=1, guild_id=GUILD, not_character=True, is_moderator=True
    )
    assert known_keys(engine, VERSION) == set()
    rows = rows_since(engine, VERSION)
    assert [row.embedding is None for row in rows] == [False, True]


def test_rows_of_a_removed_character_read_as_tombstones_and_faces_file_under_the_model_label(
    engine: Engine,
) -> None:
    aiko = add_character(engine, NewCharacter(name="Aiko Hoshino"))
    gone = add_character(engine, NewCharacter(name="Old Friend"))
    with session_scope(engine) as session:
        add_faces(session, VERSION, [
            NewMemoryFace("a1", aiko, "subreddit", encode_embedding(_vector(1))),
            NewMemoryFace("g1", gone, "subreddit", encode_embedding(_vector(2))),
        ])  # fmt: skip
    world = _world(["aiko_hoshino", "ren_tanaka"])
    MemoryFeed(engine, world, VERSION).poll()
    assert world.memory.count("aiko_hoshino") == 4 and world.memory.count("Old Friend") == 1
    remove_character(engine, "Old Friend")
    fresh = _world(["aiko_hoshino", "ren_tanaka"])
    MemoryFeed(engine, fresh, VERSION).poll()
    assert fresh.memory.count("Old Friend") == 0


def test_forgetting_a_member_takes_their_faces_out_of_every_memory(engine: Engine, store: ImageStore) -> None:
    aiko = add_character(engine, NewCharacter(name="Aiko Hoshino"))
    prediction = _predict(engine, store, 3)
    cast_vote(
        engine, prediction_id=prediction, member_id=1, guild_id=GUILD, character_id=aiko, is_moderator=True
    )
    assert len(known_keys(engine, VERSION)) == 1
    forget_member(engine, AUTHOR, store)
    assert known_keys(engine, VERSION) == set()
    assert all(row.embedding is None for row in rows_since(engine, VERSION))
