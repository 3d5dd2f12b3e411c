"""Every answer kind through the real bot in the sandbox, and the memory learning without a retrain.

The tiny model knows four characters. Pictures of characters drawn with another seed are strangers
to it; their faces reach the bot's memory the way the product puts them there: catalog rows written
by the worker (here: written directly, with embeddings computed by the bot's own answer path) or a
label landing from members' votes. The bot picks rows up by polling the catalog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, select

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.memory import NewMemoryFace, add_faces
from catalog.schema import Prediction
from catalog.settings_sections import MemorySettings
from models.memory import encode_embedding
from sandbox.characters.render import render_character
from sandbox.characters.traits import make_characters
from tests.fixtures.bot import BotHarness, encode, make_harness
from tests.fixtures.discord import DiscordWorld
from tests.fixtures.model import TinyModel

STRANGER_SEED = 4242
EXAMPLES = 6
PICTURES = 3


def strangers() -> list:
    return make_characters(3, STRANGER_SEED)


def picture(spec, seed: int) -> bytes:
    image, _ = render_character(spec, np.random.default_rng(seed), 256)
    return encode(image.convert("RGB"), "JPEG", quality=90)


@pytest.fixture
async def open_harness(
    discord_world: DiscordWorld,
    data_dir: Path,
    cascade_path: Path,
    sqlite_engine: Engine,
    model_source: tuple[Path, list[str]],
    tiny_model: TinyModel,
) -> AsyncIterator[BotHarness]:
    running = await make_harness(discord_world, data_dir, cascade_path, sqlite_engine, model_source)
    running.model_dataset = tiny_model.dataset_root  # type: ignore[attr-defined]
    running.settings = running.settings.model_copy(
        update={"memory": MemorySettings(poll_s=0.1, min_examples=5)}
    )
    clash = {s.name for s in strangers()} & {label.replace("_", " ").title() for label in running.labels}
    assert not clash, f"the strangers share names with the tiny model's characters: {clash}"
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def _ask(harness: BotHarness, name: str, data: bytes) -> tuple[str, list[dict]]:
    message = await harness.post((name, data, "image/jpeg"))
    reply = await harness.reply_to(message)
    with session_scope(harness.engine) as session:
        rows = session.scalars(select(Prediction).where(Prediction.message_id == message)).all()
        return reply.text(), [dict(row.topk) for row in rows]


def _embedding(harness: BotHarness, data: bytes) -> bytes:
    """The face's embedding as the bot computes it (what the worker stores for a scraped face)."""
    answer = harness.bot.inference.compute(data)  # type: ignore[union-attr]
    assert answer.faces and answer.faces[0].embedding is not None
    return encode_embedding(answer.faces[0].embedding)


async def _remember(harness: BotHarness, name: str, faces: list[bytes], prefix: str) -> None:
    character = add_character(harness.engine, NewCharacter(name=name))
    version = harness.registry.active_version()
    with session_scope(harness.engine) as session:
        add_faces(session, version, [NewMemoryFace(f"{prefix}-{i}", character, "subreddit", e)
                                     for i, e in enumerate(faces)])  # fmt: skip
    await _until_known(harness, name)


async def _until_known(harness: BotHarness, name: str, timeout: float = 60.0) -> int:
    """Wait (within the issue's 60 s) until the bot's memory can name `name`."""
    deadline = time.monotonic() + timeout
    while True:
        world = harness.bot.inference.world  # type: ignore[union-attr]
        faces = world.characters().get(name) if world is not None else None
        if faces:
            return faces
        assert time.monotonic() < deadline, f"the bot did not learn {name} within {timeout:.0f}s"
        await asyncio.sleep(0.05)  # the bot's own poll of the catalog is what is waited for


async def test_the_four_answer_kinds(open_harness: BotHarness) -> None:
    harness = open_harness
    flat = encode(Image.new("RGB", (300, 300), (40, 160, 90)), "JPEG", quality=90)
    text, rows = await _ask(harness, "flat.jpg", flat)
    assert rows[0]["kind"] == "not_character" and "not a character" in text

    stranger, newcomer, twins = strangers()
    answers = [await _ask(harness, f"s{i}.jpg", picture(stranger, 100 + i)) for i in range(PICTURES)]
    kinds = [rows[0]["kind"] for _, rows in answers]
    assert "stranger" in kinds, kinds
    assert any("a character I don't know" in text for text, _ in answers)

    known = sorted((harness.model_dataset / harness.labels[0]).glob("*.jpg"))[:PICTURES]  # type: ignore[attr-defined]
    answers = [await _ask(harness, p.name, p.read_bytes()) for p in known]
    named = [rows[0] for _, rows in answers if rows[0]["kind"] == "name"]
    assert named, [rows[0]["kind"] for _, rows in answers]
    assert all(row["candidates"][0]["label"] == harness.labels[0] for row in named)
    assert any(f"**{harness.labels[0].replace('_', ' ').title()}**" in text for text, _ in answers)

    # a character the model was never trained on, named from six scraped faces
    await _remember(
        harness, newcomer.name, [_embedding(harness, picture(newcomer, s)) for s in range(EXAMPLES)], "n"
    )
    answers = [await _ask(harness, f"n{i}.jpg", picture(newcomer, 200 + i)) for i in range(PICTURES)]
    named = [rows[0] for _, rows in answers if rows[0]["kind"] == "name"]
    assert named and all(row["candidates"][0]["label"] == newcomer.name for row in named), answers
    assert any(f"(from {EXAMPLES} examples" in text for text, _ in answers)

    # two memory characters with the very same faces: the bot cannot tell them apart
    faces = [_embedding(harness, picture(twins, s)) for s in range(EXAMPLES)]
    await _remember(harness, "Twin One", faces, "t1")
    await _remember(harness, "Twin Two", faces, "t2")
    assert harness.bot.inference.world.thresholds.name > 0.5  # type: ignore[union-attr]
    text, rows = await _ask(harness, "twin.jpg", picture(twins, 300))
    assert rows[0]["kind"] == "pair", rows
    assert {c["label"] for c in rows[0]["candidates"][:2]} == {"Twin One", "Twin Two"}
    assert "one of these two" in text and "Twin One" in text and "Twin Two" in text


async def test_a_quorum_fix_names_a_new_character_without_a_retrain(
    discord_world: DiscordWorld,
    data_dir: Path,
    cascade_path: Path,
    sqlite_engine: Engine,
    model_source: tuple[Path, list[str]],
) -> None:
    harness = await make_harness(discord_world, data_dir, cascade_path, sqlite_engine, model_source)
    harness.settings = harness.settings.model_copy(
        update={"memory": MemorySettings(poll_s=0.1, min_examples=1)}
    )
    await harness.start()
    try:
        spec = strangers()[0]
        newcomer = add_character(harness.engine, NewCharacter(name=spec.name))
        data = picture(spec, 7)
        message = await harness.post(("who.jpg", data, "image/jpeg"))
        reply = await harness.reply_to(message)
        pid = int(next(c for c in reply.custom_ids() if c.startswith("namae:fix:")).rsplit(":", 1)[1])
        bob = harness.world.guild.add_member("bob")
        for member in (harness.world.member_id, bob):
            click = await harness.fake.click(reply.id, f"namae:fix:{pid}", member)
            picker = await click.wait_original()
            choice = await harness.fake.choose(picker.id, f"namae:pick:{pid}", [str(newcomer)], member)
            assert (await choice.response()).accepted
        landed = time.monotonic()
        assert await _until_known(harness, spec.name) == 1
        learned_after = time.monotonic() - landed
        text, rows = await _ask(harness, "again.jpg", data)
        assert rows[0]["kind"] == "name" and rows[0]["candidates"][0]["label"] == spec.name, rows
        assert "(from 1 example," in text
        assert learned_after < 60
    finally:
        await harness.stop()
