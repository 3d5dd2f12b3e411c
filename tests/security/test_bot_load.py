"""Load: 200 images posted at about 20 a second through the fake Discord. Every message is answered,
the gateway session holds (heartbeats keep coming on one connection, no resume, no new identify),
and the bot's peak RSS stays within what its configuration allows.

How long it takes, how late heartbeats and the event loop are: time bounds, which a busy machine
can miss for reasons that are not bugs; `bench/load.py` measures them (`make bench`)."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from tests.fixtures.bot import BotHarness, make_harness, portrait

log = logging.getLogger(__name__)

IMAGES = 200
REPLY_WAIT_S = 300.0  # how long a reply is waited for: a deadline for the wait, not a bound asserted
POST_INTERVAL_S = 0.05


def variants(n: int) -> list[bytes]:
    """`n` distinct JPEGs (different bytes, so the result cache cannot answer them) from 20 renders."""
    bases = [np.asarray(portrait(i % 4, seed=500 + i)) for i in range(20)]
    out = []
    for i in range(n):
        pixels = bases[i % 20].copy()
        pixels[:4, :4] = (i * 37 % 256, i * 11 % 256, i // 20)  # a tiny mark that changes the bytes
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


@pytest.fixture
async def load_harness(discord_world, data_dir: Path, cascade_path: Path, sqlite_engine, model_source):
    running = await make_harness(
        discord_world,
        data_dir,
        cascade_path,
        sqlite_engine,
        model_source,
        concurrency=2,
        cache_size=64,
        max_image_bytes=2 * 1024 * 1024,
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_two_hundred_images_all_answered_within_the_memory_bound(load_harness: BotHarness) -> None:
    harness = load_harness
    pictures = variants(IMAGES)
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    members = [harness.world.guild.add_member(f"load{i}") for i in range(20)]

    async def sample_rss() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    fake = harness.fake
    beats_before, identifies, resumes = len(fake.heartbeats), fake.identify_count, fake.resume_count
    sampler = asyncio.create_task(sample_rss())
    ids = []
    for i, data in enumerate(pictures):
        # A steady stream (members post at ~20 pictures a second), not one burst.
        ids.append(await harness.post((f"l{i}.jpg", data, "image/jpeg"), author=members[i % len(members)]))
        await asyncio.sleep(POST_INTERVAL_S)
    replies = await asyncio.gather(*(harness.reply_to(mid, timeout=REPLY_WAIT_S) for mid in ids))
    sampler.cancel()

    assert len(replies) == IMAGES and all("**Image**" in r.text() for r in replies)
    # The gateway session held: heartbeats kept coming on the one connection, nothing reconnected.
    beats = fake.heartbeats[beats_before:]
    assert beats and {b.connection for b in beats} == {fake.heartbeats[beats_before - 1].connection}
    assert (fake.identify_count, fake.resume_count) == (identifies, resumes)
    # Memory: at most 2 x concurrency images are held (downloaded or decoding), each within
    # max_image_bytes and the decoded pixel limit; the cache keeps answers only (no pixels).
    s = harness.settings
    per_image = s.discord.max_image_bytes + 3 * min(s.images.max_pixels, 4096 * 4096) * 2
    bound = 2 * s.discord.concurrency * per_image + 150 * 1024 * 1024
    growth = peak - baseline
    log.warning(
        "load: %d images, peak RSS %.0f MiB (+%.0f MiB; bound +%.0f MiB)",
        IMAGES, peak / 2**20, growth / 2**20, bound / 2**20,
    )  # fmt: skip
    assert growth < bound
