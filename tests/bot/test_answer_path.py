"""The one answer path: the bot and `namae classify` give the same answers for the same files, and
the model card's per-class thresholds decide the bot's "not sure" unless the guild set its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from catalog.db import session_scope
from catalog.schema import Prediction
from namae.cli import app
from sandbox.characters.render import render_scene
from tests.fixtures.bot import (
    BotHarness,
    animated_gif,
    characters,
    encode,
    jpeg,
    make_harness,
    png_with_alpha,
    two_face_jpeg,
)
from tests.fixtures.discord import DiscordWorld

MIME = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}


def _big_scene() -> bytes:
    """A 2560 px JPEG: the bot and the CLI both decode it at reduced scale and report boxes in the
    file's own pixels."""
    image, _ = render_scene(characters()[:3], np.random.default_rng(11), size=(2560, 1280))
    return encode(image.convert("RGB"), "JPEG", quality=90)


def _answers_in_catalog(engine: Engine, message_id: int) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(Prediction).where(Prediction.message_id == message_id).order_by(Prediction.id)
        )
        return [
            {
                "box": row.box,
                "unknown": row.topk["unknown"],
                "candidates": [(c["label"], c["probability"]) for c in row.topk["candidates"]],
            }
            for row in rows
        ]


@pytest.fixture
async def card_harness(
    discord_world: DiscordWorld, data_dir: Path, cascade_path: Path, sqlite_engine: Engine, model_source: Any
):
    """The bot with no threshold of its own: the model card decides."""
    running = await make_harness(
        discord_world, data_dir, cascade_path, sqlite_engine, model_source, default_threshold=None
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_the_bot_and_namae_classify_answer_alike(
    card_harness: BotHarness, cascade_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "portrait.jpg": jpeg(0, 3),
        "pair.jpg": two_face_jpeg(),
        "big.jpg": _big_scene(),
        "wave.gif": animated_gif(),
        "alpha.png": png_with_alpha(),
    }
    by_bot: dict[str, list[dict[str, Any]]] = {}
    for name, data in files.items():
        message_id = await card_harness.post((name, data, MIME[name.rsplit(".", 1)[1]]))
        await card_harness.reply_to(message_id)
        by_bot[name] = _answers_in_catalog(card_harness.engine, message_id)
    assert sum(len(faces) for faces in by_bot.values()) >= 7, by_bot  # faces were found, not only wholes

    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("NAMAE_DATA_DIR", str(card_harness.settings.data_dir))
    monkeypatch.setenv("NAMAE_FACES__CASCADE_PATH", str(cascade_path))
    monkeypatch.setenv("NAMAE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("NAMAE_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["classify", "--json", *(str(folder / name) for name in files)])
    assert result.exit_code == 0, result.output
    by_cli = {Path(r["image"]).name: r["faces"] for r in json.loads(result.output)["results"]}

    assert by_cli.keys() == by_bot.keys()
    for name, bot_faces in by_bot.items():
        cli_faces = by_cli[name]
        assert [f["box"] for f in cli_faces] == [f["box"] for f in bot_faces], name
        assert [f["unknown"] for f in cli_faces] == [f["unknown"] for f in bot_faces], name
        for cli_face, bot_face in zip(cli_faces, bot_faces, strict=True):
            assert [c["label"] for c in cli_face["candidates"]] == [
                label for label, _ in bot_face["candidates"]
            ]
            assert [c["probability"] for c in cli_face["candidates"]] == pytest.approx(
                [p for _, p in bot_face["candidates"]], abs=1e-6
            )


async def test_the_cards_per_class_threshold_decides_not_sure(card_harness: BotHarness) -> None:
    # Head-only versions (no memory): with one, the open-set thresholds decide instead, and the
    # memory's evidence can change the ranking. A high temperature flattens the probabilities under
    # the strict threshold below; the ranking stays the head's.
    picture = jpeg(1, 4)
    version = card_harness.promote_variant(temperature=50.0, thresholds={"global": 0.0}, open_set=False)
    assert card_harness.bot is not None
    await card_harness.bot.inference.wait_for_version(version, timeout=10)
    first = await card_harness.post(("a.jpg", picture, "image/jpeg"))
    await card_harness.reply_to(first)
    [answer] = _answers_in_catalog(card_harness.engine, first)
    best = answer["candidates"][0][0]
    assert answer["unknown"] is False

    # The same picture, a card that is strict for exactly this character: "not sure".
    strict = {"global": 0.0, "per_class": {best: 0.99}}
    version = card_harness.promote_variant(temperature=50.0, thresholds=strict, open_set=False)
    await card_harness.bot.inference.wait_for_version(version, timeout=10)
    message = await card_harness.post(("b.jpg", picture, "image/jpeg"))
    reply = await card_harness.reply_to(message)
    assert "not sure" in reply.text()
    [doubtful] = _answers_in_catalog(card_harness.engine, message)
    assert doubtful["candidates"][0][0] == best and doubtful["unknown"] is True

    # A card that is strict for everyone but lenient for this character: named.
    lenient = {"global": 0.99, "per_class": {best: 0.0}}
    version = card_harness.promote_variant(temperature=50.0, thresholds=lenient, open_set=False)
    await card_harness.bot.inference.wait_for_version(version, timeout=10)
    message = await card_harness.post(("c.jpg", picture, "image/jpeg"))
    reply = await card_harness.reply_to(message)
    assert "not sure" not in reply.text()
    [named] = _answers_in_catalog(card_harness.engine, message)
    assert named["candidates"][0][0] == best and named["unknown"] is False

    # A guild's own threshold overrides the card.
    guild = card_harness.world.guild.id
    await card_harness.bot.in_thread(card_harness.bot.guild_settings.set_threshold, guild, 0.999)
    reply = await card_harness.reply_to(await card_harness.post(("d.jpg", picture, "image/jpeg")))
    assert "not sure" in reply.text()
