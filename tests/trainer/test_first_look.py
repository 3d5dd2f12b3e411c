"""Member 1 of a version of several members as its first look (`models.card.FirstLook`): its vector
is columns of the memory's, its graph ships beside the version's, and the answer path runs every
member only on the faces member 1 lands near one of its bars."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import Engine, select

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.jobs import JobKind, JobQueue
from catalog.memory import rows_since
from catalog.predictions import AnswerRecord, ImageRecord, MessageContext, record_predictions
from catalog.schema import Prediction
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from catalog.votes import cast_vote
from media.boxes import same_face
from media.decode import DecodeLimits, decode_image
from media.encode import encode_png
from models import colour, preprocess
from models.answer import answer_pixels
from models.card import FIRST_INT8_NAME, FIRST_NAME, read_card
from models.classifier import Classifier
from models.errors import ModelLoadError
from models.memory import MEMORY_NAME, CharacterMemory, decode_embedding
from models.memory_feed import MemoryFeed
from models.open_world import OpenWorld, project
from models.openset import Kind
from models.registry import Registry
from models.versions import validate_folder
from tests.fixtures.bot import BotHarness
from tests.models.tiny import random_images
from tests.trainer.conftest import tiny_settings
from trainer import backbones
from trainer.ensemble import Ensemble
from trainer.export import normalize_batch
from trainer.first_look import member_columns
from trainer.memory_sync import remember_new_faces
from trainer.openeval import evaluate
from trainer.openeval_answers import (
    Answered,
    Pictures,
    decide_all,
    every_member_share,
    read_folder,
    run_model,
)
from trainer.openeval_report import markdown
from trainer.run import train_run

SIZE = 64


def _member(seed: int, middle: float) -> backbones.Classifier:
    torch.manual_seed(seed)
    return backbones.build(backbones.LITE0, 3, SIZE, pretrained=False, middle=middle).net.eval()


@pytest.mark.parametrize(("count", "middle", "weight"), [(2, 0.25, 0.2), (3, 0.25, 0.0), (3, 0.0, 0.2)])
def test_member_ones_columns_of_the_memorys_vector_are_its_own_vector(
    count: int, middle: float, weight: float
) -> None:
    members = [_member(seed, middle) for seed in range(count)]
    ensemble = Ensemble(members).eval()
    pictures = random_images(4, seed=3)
    batch = preprocess.to_batch(pictures, SIZE)
    with torch.inference_mode():
        x = normalize_batch(batch)
        whole = colour.with_colour(ensemble.features_and_embedding(x)[1].numpy(), batch, weight)
        own = colour.with_colour(members[0].features_and_embedding(x)[1].numpy(), batch, weight)
        second = colour.with_colour(members[1].features_and_embedding(x)[1].numpy(), batch, weight)
    columns = member_columns(ensemble, weight)
    seen = project(whole, columns)
    assert seen.shape == own.shape
    np.testing.assert_allclose(seen, own, atol=1e-5)
    assert not np.allclose(seen, second, atol=1e-2)  # member 1's columns, not any member's


@pytest.fixture(scope="module")
def trained_two(
    tmp_path_factory: pytest.TempPathFactory, cascade_path: Path, three_characters: tuple[Path, list[str]]
) -> tuple[Settings, Path, list[np.ndarray]]:
    """A run of two members, registered: its settings, version folder and pictures of its characters."""
    folder, names = three_characters
    settings = tiny_settings(
        tmp_path_factory.mktemp("first_look"), cascade_path, backbone="efficientnet_lite0", image_size=SIZE,
        members=2,
    )  # fmt: skip
    result = train_run(settings, None, from_folder=folder, progress=False)
    assert result.version is not None
    registry = Registry.from_settings(settings, None)
    registry.promote(result.version, force=True)
    files = [p for name in names for p in sorted((folder / name).glob("*.jpg"))[:4]]
    images = [decode_image(p.read_bytes(), settings.images).rgb for p in files]
    return settings, registry.version_dir(result.version), images


@pytest.fixture
def two_members(trained_two: tuple[Settings, Path, list[np.ndarray]]) -> tuple[Path, list[np.ndarray]]:
    return trained_two[1], trained_two[2]


def _with_margins(classifier: Classifier, margins: tuple[float, float]) -> None:
    assert classifier.world is not None and classifier.world.first is not None
    classifier.world.first._margins = margins


def test_a_version_of_two_members_ships_member_ones_graph_and_bars(
    two_members: tuple[Path, list[np.ndarray]],
) -> None:
    version_dir, _ = two_members
    card = validate_folder(version_dir)
    first = card.first_look
    assert first is not None and first.members == 2
    assert (version_dir / FIRST_NAME).is_file()
    assert (version_dir / FIRST_INT8_NAME).is_file() == (first.int8 is not None)
    assert card.open_set is not None and first.open_set != card.open_set  # its own bars
    # member 1's gate is its middle columns, in its own vector
    assert first.open_set.gate == (1280, 1280 + 192)
    assert first.width == 1280 + 192 + colour.BINS
    assert first.margins[0] > 0.0 and first.margins[1] > 0.0
    # the trainer scored its test faces as the version answers: member 1 first
    assert 0.0 <= card.metrics["open_set_test_every_member"] < 1.0
    classifier = Classifier.load(version_dir, int8=False)
    assert classifier.first is not None and classifier.world is not None
    assert classifier.world.first is not None and classifier.world.first.margins == first.margins


def test_member_one_answers_alone_far_from_its_bars_and_every_member_near_them(
    two_members: tuple[Path, list[np.ndarray]],
) -> None:
    version_dir, images = two_members
    classifier = Classifier.load(version_dir, int8=False)
    assert classifier.world is not None and classifier.first is not None
    alone = OpenWorld(classifier.labels, classifier.card.open_set, classifier.world.memory)  # type: ignore[arg-type]

    _with_margins(classifier, (0.0, 0.0))  # nothing is near: member 1 decides every face
    by_first = [answer_pixels(rgb, model=classifier, finder=None)[0] for rgb in images]
    first_looks = classifier.first.infer(images)
    expected = classifier.world.first.decide(first_looks)
    assert [a.kind for a in by_first] == [d.kind for d in expected]
    assert [a.best.label for a in by_first if a.best] == [d.candidates[0].label for d in expected]
    # its vector is not the memory's: the answer keeps none (a label on it goes through a memory job)
    assert all(a.embedding is None for a in by_first)

    _with_margins(classifier, (np.inf, np.inf))  # every face is near: every member decides each
    by_all = [answer_pixels(rgb, model=classifier, finder=None)[0] for rgb in images]
    answered = run_model(classifier, Pictures(images=images, labels=[None] * len(images)))
    everyone = decide_all(classifier.world, answered, in_turn=False)
    assert [a.kind for a in by_all] == [d.kind for d in everyone]
    assert all(a.embedding is not None and a.embedding.shape == (classifier.embedding_dim,) for a in by_all)
    # ... as a version of the same graph without a first look decides them
    assert [d.kind for d in everyone] == [
        d.kind for d in decide_all(alone, Answered(answered.first, answered.both))
    ]

    # the evaluation's answers are the answer path's, in turn
    in_turn = decide_all(classifier.world, answered)
    assert [d.kind for d in in_turn] == [a.kind for a in by_all]
    assert every_member_share(classifier.world, in_turn) == 1.0
    _with_margins(classifier, (0.0, 0.0))
    assert every_member_share(classifier.world, decide_all(classifier.world, answered)) == 0.0
    assert {a.kind for a in by_first + by_all} <= set(Kind)


def test_a_character_added_to_the_memory_is_seen_by_member_one_too(
    two_members: tuple[Path, list[np.ndarray]],
) -> None:
    """The memory holds every member's vectors; member 1 reads its own columns of a face added
    after training (a refresh of the version's world refreshes its first look's)."""
    from models.memory import MemoryEntry

    version_dir, _ = two_members
    classifier = Classifier.load(version_dir, int8=False)
    world = classifier.world
    assert world is not None and world.first is not None and classifier.first is not None
    newcomer = random_images(6, seed=21)
    vectors = classifier.infer(newcomer).vectors
    world.memory.add(MemoryEntry(f"new-{i}", "newcomer", "vote", v) for i, v in enumerate(vectors))
    world.set_min_examples(5)
    world.refresh()
    assert "newcomer" in world.characters() and "newcomer" in world.first.characters()
    _, prototypes = world.memory.prototypes()
    own = classifier.first.infer(newcomer).vectors.mean(0)
    seen = world.first._snapshot.prototypes[world.first._snapshot.names.index("newcomer")]
    np.testing.assert_allclose(seen, own / np.linalg.norm(own), atol=5e-3)  # float16 rows aside
    assert prototypes.shape[1] == classifier.embedding_dim


def test_a_version_whose_member_one_graph_was_changed_does_not_load(
    two_members: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    version_dir, _ = two_members
    copy = tmp_path / "copy"
    shutil.copytree(version_dir, copy)
    with (copy / FIRST_NAME).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="member-1.onnx does not match its card"):
        Classifier.load(copy)
    (copy / FIRST_NAME).unlink()
    with pytest.raises(ModelLoadError, match="has no member-1.onnx, which its card lists"):
        Classifier.load(copy)


def test_a_label_on_a_face_member_one_answered_alone_reaches_the_memory_through_the_memory_job(
    trained_two: tuple[Settings, Path, list[np.ndarray]], engine: Engine, tmp_path: Path
) -> None:
    """Member 1's vector is not the memory's, so the prediction keeps none; the label queues the
    memory job, which embeds the stored crop with every member, and the answerer's feed takes the
    row into both looks."""
    settings, version_dir, images = trained_two
    settings = settings.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(version_dir.parent.parent, settings.data_dir / "models")
    registry = Registry.from_settings(settings, None)
    version = version_dir.name
    assert registry.active_version() == version
    classifier = Classifier.load(registry.version_dir(version), int8=False)
    _with_margins(classifier, (0.0, 0.0))
    face = images[-1]
    [answer] = answer_pixels(face, model=classifier, finder=None)
    assert answer.embedding is None
    newcomer = add_character(engine, NewCharacter(name="Newcomer Chan"))
    data = encode_png(face)
    record = AnswerRecord(
        candidates=[(c.label, c.probability) for c in answer.candidates], unknown=answer.unknown,
        face_index=0, box=(0, 0, face.shape[1], face.shape[0]), crop_png=encode_png(face),
        embedding=None, kind=answer.kind.value,
    )  # fmt: skip
    image = ImageRecord(
        sha256=sha256_of(data),
        answers=[record],
        data=data,
        width=face.shape[1],
        height=face.shape[0],
        format="png",
    )
    context = MessageContext(1, 2, 3, 4, "https://discord.com/channels/1/2/3", version)
    [[prediction]] = record_predictions(
        engine, ImageStore.from_settings(settings), context, [image], same_face=same_face
    )
    outcome = cast_vote(
        engine, prediction_id=prediction, member_id=9, guild_id=1, character_id=newcomer, is_moderator=True
    )
    assert outcome.status == "moderator"  # a moderator's word is the label
    assert rows_since(engine, version) == []  # no vector of the memory's width to add at once ...
    queued = JobQueue(engine).claim("test-worker", (JobKind.memory.value,))
    assert queued is not None  # ... so the worker's memory job embeds the stored crop
    done = remember_new_faces(settings, engine, registry=registry)
    assert done["added"] == 1
    [row] = rows_since(engine, version)
    assert decode_embedding(row.embedding).shape == (classifier.embedding_dim,)
    world = classifier.world
    assert world is not None and world.first is not None
    world.set_min_examples(1)
    assert MemoryFeed(engine, world, version).poll() == 1
    assert world.characters()["Newcomer Chan"] == 1 and world.first.characters()["Newcomer Chan"] == 1


def test_namae_eval_reports_how_many_faces_every_member_decided(
    trained_two: tuple[Settings, Path, list[np.ndarray]], three_characters: tuple[Path, list[str]]
) -> None:
    settings, version_dir, _ = trained_two
    classifier = Classifier.load(version_dir, int8=False)
    memory = CharacterMemory.load(version_dir / MEMORY_NAME)
    known = read_folder(three_characters[0], DecodeLimits(settings.images), per_character=True)
    result = evaluate(classifier, memory, known, shots=(1,), draws=1)
    assert result["members"] == 2
    share = result["known"]["every_member"]
    assert 0.0 <= share <= 1.0
    assert any(line.startswith("Decided by all 2 members") for line in markdown(result))
    # the same faces decided by every member without member 1 first: the share handed over
    # decides as they do
    answered = run_model(classifier, known)
    in_turn = decide_all(classifier.world, answered)  # type: ignore[arg-type]
    everyone = decide_all(classifier.world, answered, in_turn=False)  # type: ignore[arg-type]
    handed = [a.kind == b.kind for a, b in zip(in_turn, everyone, strict=True) if a.members == 2]
    assert all(handed) and len(handed) == round(share * len(in_turn))


@pytest.fixture
def model_source(trained_two: tuple[Settings, Path, list[np.ndarray]]) -> tuple[Path, list[str]]:
    """The bot of this module answers with the two-member version (not the session's tiny model)."""
    settings, version_dir, _ = trained_two
    return settings.registry_dir, list(read_card(version_dir).labels)


async def test_the_bot_answers_with_member_one_first_through_discord(
    harness: BotHarness, trained_two: tuple[Settings, Path, list[np.ndarray]]
) -> None:
    """The real bot loads the version's first look; a face member 1 decides alone is answered as
    the answer path answers it and its prediction keeps no vector; a face handed over keeps every
    member's, the memory's width."""
    _, _, images = trained_two
    assert harness.bot is not None
    service = harness.bot.inference
    classifier = service.classifier
    assert classifier is not None and classifier.first is not None
    # other pictures in each round: the bot answers a picture it has seen from its cache
    rounds = (((0.0, 0.0), False, [images[0], images[-1]]), ((np.inf, np.inf), True, [images[1], images[-2]]))
    for margins, handed, pictures in rounds:
        _with_margins(classifier, margins)
        for i, data in enumerate(encode_png(picture) for picture in pictures):
            message = await harness.post((f"{margins[0]}-{i}.png", data, "image/png"))
            await harness.reply_to(message)
            expected = service.compute(data)
            with session_scope(harness.engine) as session:
                rows = session.scalars(select(Prediction).where(Prediction.message_id == message)).all()
                assert [dict(row.topk)["kind"] for row in rows] == [
                    face.kind.value for face in expected.faces
                ]
                for row in rows:
                    if handed:
                        assert decode_embedding(row.embedding).shape == (classifier.embedding_dim,)
                    else:
                        assert row.embedding is None
