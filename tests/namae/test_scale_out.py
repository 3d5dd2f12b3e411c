"""Workers on several machines: three `namae worker` processes and a `namae bot`, each with its own
empty data directory, share nothing but one PostgreSQL catalog and one S3 bucket (a real server).

A scrape runs on one worker, training on another; that worker is killed with SIGKILL mid-training,
the third claims the job once its heartbeat has expired, and the version is registered once. The
bot, which never saw a file the others wrote, picks up the promoted model by itself (hot reload
from the store) and answers with it. Each worker runs one job and exits (`--max-jobs 1`), so the
three jobs land on three different processes whatever order they claim in."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from catalog.db import make_engine, upgrade
from catalog.guilds import GuildSettingsStore
from catalog.jobs import JobQueue
from catalog.schema import JobStatus
from catalog.settings import Settings
from catalog.settings_sections import RedditSettings, StoreSettings
from models.registry import Registry
from tests.fixtures.discord import DiscordWorld
from tests.namae.test_worker_crash import assert_children_died, worker_env
from tests.scraper.test_scrape_e2e import add_world_characters, scrape_settings

REPO = Path(__file__).resolve().parents[2]
WORKERS = ("machine-a", "machine-b", "machine-c")
STALE_AFTER_S = 3.0
DEADLINE_S = 300.0


class Machine:
    """A process with its own data directory; its log goes to a file (a pipe nobody reads fills up)."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.log = settings.data_dir.parent / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *command: str, env: dict[str, str]) -> None:
        with self.log.open("ab") as sink:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "namae", *command, cwd=REPO, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=sink,
            )  # fmt: skip

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def wait_for(predicate: Callable[[], Any], what: str, machines: list[Machine]) -> Any:
    """Poll the catalog (or the store) until `predicate` returns something truthy; fail early when
    a machine that should be running died."""
    deadline = time.monotonic() + DEADLINE_S
    while not (value := predicate()):
        for machine in machines:
            if machine.process is not None and machine.process.returncode not in (None, 0):
                pytest.fail(
                    f"{machine.name} exited with {machine.process.returncode} before {what}:\n{machine.tail()}"
                )
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S:.0f} s"
        await asyncio.sleep(0.1)  # the fakes serve from this event loop while we poll
    return value


def picture(seed: int) -> bytes:
    from sandbox.characters import jpeg_bytes, make_characters, render_character

    spec = make_characters(3, 11)[seed % 3]
    image, _ = render_character(spec, np.random.default_rng(seed), 256)
    return jpeg_bytes(image)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.timeout(900)
async def test_workers_and_bot_share_only_the_catalog_and_the_bucket(
    settings: Settings,
    reddit_world: Any,
    reddit_settings: RedditSettings,
    discord_world: DiscordWorld,
    postgres_url: str,
    s3_store: StoreSettings,
    tmp_path: Path,
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    add_world_characters(engine, reddit_world.expected)
    GuildSettingsStore(engine).enable_channel(discord_world.guild.id, discord_world.channel_id)
    shared = scrape_settings(settings, reddit_settings, reddit_world.fake.hosts).model_copy(
        update={
            "database_url": postgres_url,
            "store": s3_store,
            "train": settings.train.model_copy(
                update={"epochs": 1, "image_size": 64, "min_images_per_class": 4, "batch_size": 16}
            ),
        }
    )

    def machine(name: str) -> Machine:
        data_dir = tmp_path / name / "data"
        data_dir.mkdir(parents=True)
        return Machine(name, shared.model_copy(update={"data_dir": data_dir}))

    workers = {name: machine(name) for name in WORKERS}
    bot = machine("bot-machine")
    everyone = [*workers.values(), bot]
    queue = JobQueue(engine)
    scrape_id = queue.enqueue("scrape", {}, requested_by="test")
    try:
        for worker in workers.values():
            env = worker_env(worker.settings, stale_after_s=STALE_AFTER_S)
            await worker.start("worker", "--name", worker.name, "--max-jobs", "1", env=env)
        env = worker_env(bot.settings)
        fake = discord_world.fake
        env["NAMAE_DISCORD"] = json.dumps(
            {
                "token": fake.token,
                "api_base": fake.api_base,
                "gateway_url": fake.gateway_url,
                "model_poll_s": 0.5,
                # Until it has reloaded the bot answers "no model yet" and the test asks again:
                # a cooldown must not swallow the repeated question.
                "member_cooldown_rate": 1000,
                "guild_cooldown_rate": 1000,
            }
        )
        await bot.start("bot", env=env)

        # A scrape, on whichever worker claims it first.
        def scraped():
            job = queue.get(scrape_id)
            assert job.status != JobStatus.failed, job.error
            return job if job.status == JobStatus.succeeded else None

        scraper = (await wait_for(scraped, "finished scrape", everyone)).claimed_by
        assert scraper in workers and scraped().result["totals"]["new"] > 0

        # Training, on another worker; killed once it trains.
        train_id = queue.enqueue("train", {"promote": True}, requested_by="test")

        def training():
            job = queue.get(train_id)
            return job.claimed_by if job.status == JobStatus.running and job.progress >= 0.05 else None

        trainer = await wait_for(training, "training under way", everyone)
        assert trainer != scraper
        victim = workers[trainer].process
        children = [child.pid for child in psutil.Process(victim.pid).children(recursive=True)]
        victim.send_signal(signal.SIGKILL)
        await asyncio.wait_for(victim.wait(), 30)
        assert_children_died(children)
        assert (
            Registry.from_settings(
                bot.settings.model_copy(update={"data_dir": tmp_path / "observer"})
            ).versions()
            == []
        )

        # The third worker takes the job over once the killed one's heartbeat is stale.
        def trained():
            job = queue.get(train_id)
            assert job.status != JobStatus.failed, job.error
            return job if job.status == JobStatus.succeeded else None

        job = await wait_for(trained, "finished training", [w for w in everyone if w.name != trainer])
        [third] = set(workers) - {scraper, trainer}
        assert job.claimed_by == third and job.attempts == 2
        version = job.result["version"]
        assert job.result["promotion"]["promoted"] is True

        observer = Registry.from_settings(shared.model_copy(update={"data_dir": tmp_path / "observer"}))
        assert [entry.version for entry in observer.versions()] == [version], "registered exactly once"
        assert observer.active_version() == version

        # The bot reloads the promoted model from the store by itself and answers with it.
        await fake.wait_until_ready(timeout=60)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            posted = await fake.post_message(
                discord_world.channel_id, discord_world.member_id, "who?",
                attachments=[("a.jpg", picture(1), "image/jpeg")],
            )  # fmt: skip
            reply = await fake.wait_for_message(reply_to=posted, timeout=120)
            if version in reply.text():
                break
            assert time.monotonic() < deadline, f"the bot never answered with {version}: {reply.text()}"
        for name in (scraper, third):
            assert workers[name].process.returncode == 0 or workers[name].process.returncode is None
    finally:
        for participant in everyone:
            await participant.stop()
        engine.dispose()

    # Nothing any machine keeps locally is needed by another: no image store or registry folders in
    # the data directories, only caches (and the trainer's own run reports).
    for participant in everyone:
        data_dir = participant.settings.data_dir
        assert not (data_dir / "images").exists() and not (data_dir / "models").exists(), participant.name
    assert any((workers[third].settings.cache_dir / "images").rglob("*")), (
        "the trainer read images from the store"
    )
    assert (bot.settings.cache_dir / "models" / "versions" / version / "model.onnx").is_file()
