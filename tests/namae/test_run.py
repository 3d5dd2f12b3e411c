"""`namae run`: the bot and the worker in one process. Training runs in a child process, so a
picture posted while a model trains is still answered."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog.db import make_engine, upgrade
from catalog.guilds import GuildSettingsStore
from catalog.jobs import JobQueue
from catalog.schema import JobStatus
from catalog.settings import Settings
from scraper.folder import import_folder
from tests.fixtures.discord import DiscordWorld
from tests.namae.test_worker_crash import worker_env

REPO = Path(__file__).resolve().parents[2]
TRAINING_UNDER_WAY_S = 240.0  # how long the training job is waited for (a deadline for the wait)


def _jpeg(seed: int) -> bytes:
    from sandbox.characters import jpeg_bytes, make_characters, render_character

    spec = make_characters(4, 7)[seed % 4]
    image, _ = render_character(spec, np.random.default_rng(seed), 256)
    return jpeg_bytes(image)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_run_answers_a_picture_while_a_model_trains(
    settings: Settings, discord_world: DiscordWorld, tiny_model: Any, synthetic_dataset: Any
) -> None:
    fake = discord_world.fake
    shutil.copytree(tiny_model.registry_root, settings.registry_dir)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    import_folder(settings, engine, synthetic_dataset.root)
    GuildSettingsStore(engine).enable_channel(discord_world.guild.id, discord_world.channel_id)
    queue = JobQueue(engine)
    job_id = queue.enqueue("train", {"epochs": 4, "image_size": 64}, requested_by="test")

    env = worker_env(settings)
    env["NAMAE_DISCORD"] = json.dumps(
        {"token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url, "model_poll_s": 0.5}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "namae", "run", cwd=REPO, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake.wait_until_ready(timeout=60)
        deadline = asyncio.get_running_loop().time() + TRAINING_UNDER_WAY_S
        while not (queue.get(job_id).status == JobStatus.running and queue.get(job_id).progress > 0.05):
            assert process.returncode is None, (await process.stderr.read()).decode()[-3000:]
            assert asyncio.get_running_loop().time() < deadline, (
                f"training made no progress within {TRAINING_UNDER_WAY_S:.0f} s: {queue.get(job_id).status}"
            )
            await asyncio.sleep(0.1)  # polling the catalog for the job's progress
        posted = await fake.post_message(
            discord_world.channel_id,
            discord_world.member_id,
            "who?",
            attachments=[("a.jpg", _jpeg(1), "image/jpeg")],
        )
        reply = await fake.wait_for_message(reply_to=posted, timeout=60)
        assert queue.get(job_id).status == JobStatus.running, "the answer came while the model was training"
        assert tiny_model.version in reply.text()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
