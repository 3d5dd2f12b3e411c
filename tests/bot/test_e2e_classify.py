"""End to end: unmodified discord.py against the fake Discord, the real catalog and model."""

from __future__ import annotations

import asyncio
import re

import numpy as np
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.schema import Face, Image, Prediction
from media.boxes import iou
from sandbox.characters.render import render_scene
from tests.fixtures.bot import (
    BotHarness,
    LoopLagProbe,
    animated_gif,
    characters,
    encode,
    jpeg,
    png_with_alpha,
    two_face_jpeg,
)


def _count(engine, table) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


async def test_one_reply_answers_every_image_and_both_faces(harness: BotHarness) -> None:
    message_id = await harness.post(
        ("alpha.png", png_with_alpha(), "image/png"),
        ("wave.gif", animated_gif(), "image/gif"),
        ("pair.jpg", two_face_jpeg(), "image/jpeg"),
    )
    reply = await harness.reply_to(message_id)
    text = reply.text()
    assert len([m for m in harness.fake.sent_messages if m.reply_to == message_id]) == 1
    for number in (1, 2, 3):
        assert f"**Image {number}**" in text
    assert "(animated)" in text
    assert "face 3.1" in text and "face 3.2" in text, text
    assert f"model {harness.registry.active_version()}" in text
    assert reply.allowed_mentions == {"parse": []} or reply.allowed_mentions.get("parse") == []
    # Every answer has Right and Fix, carrying its prediction id.
    rights = [c for c in reply.custom_ids() if c.startswith("namae:right:")]
    fixes = [c for c in reply.custom_ids() if c.startswith("namae:fix:")]
    with session_scope(harness.engine) as session:
        predictions = list(session.scalars(select(Prediction).where(Prediction.message_id == message_id)))
        assert {p.reply_message_id for p in predictions} == {reply.id}
        assert len(predictions) == len(rights) == len(fixes) >= 4
        assert {f"namae:right:{p.id}" for p in predictions} == set(rights)
        face_rows = session.scalar(select(func.count()).select_from(Face))
        assert face_rows >= 2  # the two faces of the JPEG (crops kept for training)
        assert session.scalar(select(func.count()).select_from(Image)) == 3
    assert harness.bot is not None


async def test_fifty_images_at_once_without_blocking_the_loop(harness: BotHarness) -> None:
    pictures = [jpeg(index=i % 4, seed=100 + i) for i in range(50)]
    with LoopLagProbe() as probe:
        ids = await asyncio.gather(
            *(harness.post((f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(pictures))
        )
        replies = await asyncio.gather(*(harness.reply_to(mid, timeout=90) for mid in ids))
    assert all("**Image**" in r.text() for r in replies)
    # The loop kept running while the pictures were answered (how late it woke is a time bound,
    # measured by bench/bot.py, not asserted here).
    assert probe.samples > 20


async def test_new_model_is_used_without_restart(harness: BotHarness) -> None:
    first = await harness.reply_to(await harness.post(("a.jpg", jpeg(0, 5), "image/jpeg")))
    old = harness.registry.active_version()
    assert f"model {old}" in first.text()
    new = harness.promote_variant()
    assert harness.bot is not None
    await harness.bot.inference.wait_for_version(new, timeout=10)
    second = await harness.reply_to(await harness.post(("b.jpg", jpeg(0, 5), "image/jpeg")))
    assert f"model {new}" in second.text()
    # Same picture, new version: the cache keyed by (sha256, version) did not serve the old answer
    # (whatever the answer's kind, the footer names the version that computed it).
    assert re.search(r"face 1\.1: \S", second.text())


async def test_a_big_jpeg_is_decoded_small_but_recorded_in_its_own_pixels(harness: BotHarness) -> None:
    # 2560 px is over twice the detection side, so the bot decodes it at 1/4 scale (640 x 320).
    image, truth = render_scene(characters()[2:4], np.random.default_rng(3), size=(2560, 1280))
    message_id = await harness.post(
        ("big.jpg", encode(image.convert("RGB"), "JPEG", quality=90), "image/jpeg")
    )
    text = (await harness.reply_to(message_id)).text()
    assert "face 1.1" in text and "face 1.2" in text, text
    with session_scope(harness.engine) as session:
        row = session.scalars(select(Image)).one()
        assert (row.width, row.height) == (2560, 1280)
        boxes = [(f.x, f.y, f.w, f.h) for f in session.scalars(select(Face).order_by(Face.index))]
    assert len(boxes) == 2
    for box, (_, face) in zip(boxes, truth, strict=True):
        assert 0 <= box[0] and box[0] + box[2] <= 2560 and 0 <= box[1] and box[1] + box[3] <= 1280
        assert iou(box, face) >= 0.3, (box, face)
