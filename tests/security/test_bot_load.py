"""Load: 200 images in 60 seconds through the fake Discord. Every message is answered, gateway
heartbeats stay on time, and the bot's peak RSS stays within what its configuration allows."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from tests.fixtures.bot import (
    BotHarness,
    LoopLagProbe,
    make_harness,
    portrait,
)

log = logging.getLogger(__name__)

IMAGES = 200
DEADLINE_S = 60.0
HEARTBEAT_S = 1.0
POST_INTERVAL_S = 0.05  # tests.fixtures.discord: the fake asks for a heartbeat every second


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


async def test_two_hundred_images_in_a_minute(load_harness: BotHarness) -> None:
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

    beats_before = len(harness.fake.heartbeats)
    sampler = asyncio.create_task(sample_rss())
    started = time.perf_counter()
    with LoopLagProbe() as probe:
        ids = []
        for i, data in enumerate(pictures):
            # A steady stream (members post at ~20 pictures a second), not one burst.
            ids.append(
                await harness.post((f"l{i}.jpg", data, "image/jpeg"), author=members[i % len(members)])
            )
            await asyncio.sleep(POST_INTERVAL_S)
        replies = await asyncio.gather(*(harness.reply_to(mid, timeout=DEADLINE_S) for mid in ids))
    elapsed = time.perf_counter() - started
    sampler.cancel()

    assert len(replies) == IMAGES and all("**Image**" in r.text() for r in replies)
    assert elapsed < DEADLINE_S, f"200 images took {elapsed:.1f}s"
    # Heartbeats: discord.py sends one per interval; none may be late by more than half of one.
    beats = [b.at for b in harness.fake.heartbeats[beats_before:]]
    assert len(beats) >= int(elapsed / HEARTBEAT_S) - 1
    gaps = np.diff(beats) if len(beats) > 1 else np.array([0.0])
    assert gaps.max() < HEARTBEAT_S * 1.5, f"a heartbeat came {gaps.max():.2f}s after the previous one"
    # Memory: at most 2 x concurrency images are held (downloaded or decoding), each within
    # max_image_bytes and the decoded pixel limit; the cache keeps answers only (no pixels).
    s = harness.settings
    per_image = s.discord.max_image_bytes + 3 * min(s.images.max_pixels, 4096 * 4096) * 2
    bound = 2 * s.discord.concurrency * per_image + 150 * 1024 * 1024
    growth = peak - baseline
    log.warning(
        "load: %d images in %.1fs, peak RSS %.0f MiB (+%.0f MiB; bound +%.0f MiB), max loop lag %.0f ms",
        IMAGES, elapsed, peak / 2**20, growth / 2**20, bound / 2**20, probe.max_lag * 1000,
    )  # fmt: skip
    assert growth < bound
    assert probe.max_lag < 0.1, f"the event loop stalled for {probe.max_lag * 1000:.0f} ms"
