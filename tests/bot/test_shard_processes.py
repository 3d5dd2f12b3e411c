"""A sharded bot in two processes against the fake Discord, one catalog between them.

`namae bot --shard-ids 0` and `--shard-ids 1` (NAMAE_DISCORD__SHARD_COUNT=2) each answer only
their own guilds' pictures and clicks, votes reach quorum, a promoted model reaches both, and
their IDENTIFYs keep Discord's pacing between processes. Killed with SIGKILL, a shard's process
takes its guilds' events with it (Discord keeps sending them to the dead session) until it
starts again, IDENTIFYs afresh in its slot, and answers them again. The application commands are
synced once, by shard 0's process, with the same payloads as an unsharded bot's.

On machines of their own (each process with its own empty data directory, one PostgreSQL catalog
and one S3 bucket), both shard processes load the active model from the bucket and hot-reload a
version promoted there by a third party.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.guilds import GuildSettingsStore
from catalog.schema import Label, LabelOrigin, Vote
from catalog.settings import Settings
from catalog.settings_sections import StoreSettings
from models.registry import Registry
from sandbox.discord import FakeDiscord, FakeGuild, RecordedMessage
from sandbox.discord.sharding import ShardingRules, shard_of
from tests.fixtures.bot import BotHarness, display_name, jpeg, make_harness, promote_variant
from tests.fixtures.discord import make_world, started_fake
from tests.fixtures.shards import BotProcess, bot_environment, bot_processes, store_environment

SHARDS = 2
PACING = ShardingRules(identify_interval_s=0.3)
STARTUP_S = 120.0  # a cold `namae bot` imports onnxruntime, OpenCV and discord.py on a busy machine
REPLY_S = 60.0


def command_payloads(fake: FakeDiscord) -> list[dict[str, Any]]:
    """The synced global commands as the bot sent them (ids and versions are the fake's)."""
    return sorted(
        (
            {k: v for k, v in c.items() if k not in ("id", "application_id", "version")}
            for c in fake.commands[None]
        ),
        key=lambda c: (c["name"], c.get("type", 1)),
    )


def command_syncs(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands"))


async def wait_for_shards(fake: FakeDiscord, wanted: set[tuple[int, int]]) -> None:
    await fake.wait_until(
        lambda: True if wanted <= set(fake.live_shards()) else None,
        timeout=STARTUP_S,
        what=f"live sessions for shards {sorted(wanted)}",
    )


class Community:
    """Guilds on both shards, each with a channel where the bot answers and two members."""

    def __init__(self, fake: FakeDiscord, engine: Engine) -> None:
        self.fake = fake
        self.guilds: dict[int, list[FakeGuild]] = {shard: [] for shard in range(SHARDS)}
        self.channel: dict[int, int] = {}
        self.members: dict[int, tuple[int, int]] = {}
        settings = GuildSettingsStore(engine)
        for i in range(2 * SHARDS):
            guild = fake.add_guild(f"community {i}")
            self.channel[guild.id] = guild.add_channel("pictures")
            self.members[guild.id] = (guild.add_member(f"alice{i}"), guild.add_member(f"bob{i}"))
            settings.enable_channel(guild.id, self.channel[guild.id])
            self.guilds[shard_of(guild.id, SHARDS)].append(guild)
        assert all(len(g) == 2 for g in self.guilds.values()), "guild ids spread over the shards"
        self.seed = itertools.count(1)

    async def post(self, guild: FakeGuild) -> int:
        seed = next(self.seed)
        return await self.fake.post_message(
            self.channel[guild.id],
            self.members[guild.id][0],
            attachments=[(f"p{seed}.jpg", jpeg(seed % 4, seed), "image/jpeg")],
        )

    async def answered(self, guild: FakeGuild) -> RecordedMessage:
        posted = await self.post(guild)
        return await self.fake.wait_for_message(reply_to=posted, timeout=REPLY_S)


@pytest.fixture
async def unsharded(
    data_dir: Path, cascade_path: Path, sqlite_engine: Engine, model_source: tuple[Path, list[str]]
) -> AsyncIterator[BotHarness]:
    """The usual harness (one unsharded bot in this process, not started) on a fake that paces
    IDENTIFYs as Discord does, faster."""
    async with started_fake(PACING) as fake:
        yield await make_harness(make_world(fake), data_dir, cascade_path, sqlite_engine, model_source)


@pytest.mark.timeout(600)
async def test_two_shard_processes_route_guilds_and_survive_kill_9(
    unsharded: BotHarness, tmp_path: Path, cascade_path: Path
) -> None:
    fake = unsharded.fake
    # The same commands, as an unsharded bot in this process syncs them.
    await unsharded.start()
    await unsharded.stop()
    expected_commands = command_payloads(fake)
    assert expected_commands and command_syncs(fake) == 1

    community = Community(fake, unsharded.engine)
    env = bot_environment(
        fake, unsharded.settings.data_dir, cascade_path, NAMAE_DISCORD__SHARD_COUNT=str(SHARDS)
    )
    shards = [BotProcess(["--shard-ids", str(i)], env, tmp_path / f"shard{i}.log") for i in range(SHARDS)]
    identifies_before = len(fake.identify_log)
    with bot_processes(shards):
        await wait_for_shards(fake, {(0, SHARDS), (1, SHARDS)})
        assert command_syncs(fake) == 2, "only shard 0's process syncs"
        assert command_payloads(fake) == expected_commands

        # Every guild is answered, each by the session of its own shard.
        replies = {}
        for shard, guilds in community.guilds.items():
            for guild in guilds:
                replies[guild.id] = await community.answered(guild)
                holders = {s.shard.id for s in fake.shard_sessions(guild.id) if s.connection is not None}
                assert holders == {shard}

        # Votes on a shard-1 guild's answer reach quorum there (two members, quorum 2).
        guild = community.guilds[1][0]
        reply = replies[guild.id]
        pid = int(next(c for c in reply.custom_ids() if c.startswith("namae:right:")).rsplit(":", 1)[1])
        for member in community.members[guild.id]:
            click = await fake.click(reply.id, f"namae:right:{pid}", member)
            response = await click.response(REPLY_S)
            assert response.accepted and response.type == 7
        with session_scope(unsharded.engine) as session:
            assert (
                session.scalar(select(func.count()).select_from(Vote).where(Vote.prediction_id == pid)) == 2
            )
            label = session.scalar(select(Label).where(Label.origin == LabelOrigin.vote))
            assert label is not None

        # A promoted model reaches both processes without a restart.
        version = promote_variant(unsharded.registry)
        for shard in range(SHARDS):
            await reply_from_version(community, community.guilds[shard][1], version)

        # kill -9 shard 1's process: shard 0 keeps answering; shard 1's guilds wait for it.
        shards[1].kill()
        await fake.wait_until(
            lambda: True if (1, SHARDS) not in fake.live_shards() else None,
            timeout=30,
            what="shard 1's socket to close",
        )
        assert (await community.answered(community.guilds[0][0])).reply_to is not None
        lost = await community.post(community.guilds[1][0])
        assert all(s.connection is None for s in fake.shard_sessions(community.guilds[1][0].id))

        shards[1].start()
        await wait_for_shards(fake, {(0, SHARDS), (1, SHARDS)})
        for guild in community.guilds[1]:
            await community.answered(guild)
        # Discord does not replay a dead session's events to a new one: that post stays unanswered.
        assert not [m for m in fake.sent_messages if m.reply_to == lost]
        assert command_syncs(fake) == 2

    judged = fake.identify_log[identifies_before:]
    assert [r.outcome for r in judged] == ["ready"] * 3, judged
    ready_at = sorted(r.at for r in judged)
    assert all(b - a >= PACING.identify_interval_s for a, b in itertools.pairwise(ready_at))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.timeout(600)
async def test_shard_processes_without_a_shared_folder_reload_from_the_bucket(
    postgres_url: str,
    postgres_engine: Engine,
    s3_store: StoreSettings,
    model_source: tuple[Path, list[str]],
    cascade_path: Path,
    tmp_path: Path,
) -> None:
    root, labels = model_source
    for label in labels:
        add_character(postgres_engine, NewCharacter(name=display_name(label), subreddits=[]))
    # The active model reaches the bucket from elsewhere (a trainer's machine), as a promotion does.
    publisher = Registry.from_settings(
        Settings(data_dir=tmp_path / "trainer", store=s3_store, _env_file=None)
    )
    first = promote_variant(publisher, temperature=1.0, source=Registry(root).require_active()[1])

    machines = [Settings(data_dir=tmp_path / f"machine{i}" / "data", _env_file=None) for i in range(SHARDS)]
    async with started_fake(PACING) as fake:
        community = Community(fake, postgres_engine)
        shards = []
        for i, machine in enumerate(machines):
            machine.data_dir.mkdir(parents=True)
            env = bot_environment(
                fake, machine.data_dir, cascade_path,
                NAMAE_DISCORD__SHARD_COUNT=str(SHARDS), NAMAE_DATABASE_URL=postgres_url,
                **store_environment(s3_store),
            )  # fmt: skip
            shards.append(BotProcess(["--shard-ids", str(i)], env, tmp_path / f"shard{i}.log"))
        with bot_processes(shards):
            await wait_for_shards(fake, {(0, SHARDS), (1, SHARDS)})
            for shard in range(SHARDS):
                reply = await community.answered(community.guilds[shard][0])
                assert f"model {first}" in reply.text(), reply.text()

            version = promote_variant(publisher)
            for shard in range(SHARDS):
                await reply_from_version(community, community.guilds[shard][1], version)

    for machine in machines:
        # Only caches: the registry and the images are the bucket's.
        assert not (machine.data_dir / "models").exists() and not (machine.data_dir / "images").exists()
        assert (machine.cache_dir / "models" / "versions" / version / "model.onnx").is_file()


async def reply_from_version(community: Community, guild: FakeGuild, version: str) -> None:
    """Post until a reply names `version` (each process polls the registry on its own clock)."""
    for _ in range(40):
        reply = await community.answered(guild)
        if f"model {version}" in reply.text():
            return
    raise AssertionError(f"{guild.name} never answered with model {version}")


async def test_too_few_shards_is_one_clear_line(tmp_path: Path, cascade_path: Path) -> None:
    """Discord closes with 4011 when a shard would hold too many guilds; `namae bot` says what to
    change in one line and exits 1."""
    async with started_fake(ShardingRules(max_guilds_per_shard=1, identify_interval_s=0)) as fake:
        for name in ("one", "two"):
            fake.add_guild(name)
        data = tmp_path / "data"
        data.mkdir()
        env = bot_environment(fake, data, cascade_path)
        process = BotProcess(["--shard-count", "1"], env, tmp_path / "bot.log")
        process.start()
        assert process.process is not None
        code = await asyncio.to_thread(process.process.wait, STARTUP_S)
        output = process.log_path.read_text()
        assert code == 1, output
        assert "error: Discord requires more shards (close code 4011" in output
        assert "Traceback" not in output
        assert [r.outcome for r in fake.identify_log] == ["sharding_required"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard-ids", "0,1"], "shard_ids needs shard_count"),
        (["--shard-count", "2", "--shard-ids", "1,2"], "shard ids [2] are outside 0..1"),
        (["--shard-count", "2", "--shard-ids", "one"], "shard ids look like 0,1 or 4-7"),
        (["--shard-count", "4", "--shard-ids", "3-1"], "runs backwards"),
        (["--shard-count", "0"], "--shard-count"),
    ],
)
def test_bad_shard_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from namae.cli import app

    env = {"NAMAE_DATA_DIR": str(tmp_path / "data"), "NAMAE_CONFIG": str(tmp_path / "absent.toml")}
    result = CliRunner().invoke(app, ["bot", *args], env=env)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
