"""Real discord.py (unmodified) against the fake Discord's gateway: connecting and receiving
messages, the message content intent, privileged intents, bad tokens, resuming and invalid
sessions, heartbeats, and guilds joined after READY on a sharded client."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord.ext import commands

from bot.endpoints import point_discord_py_at
from sandbox.discord import FakeDiscord
from sandbox.discord.running import connected
from tests.fixtures.discord import DiscordWorld, PNG_1x1, make_bot


async def test_connects_and_receives_message_with_attachment(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    got: asyncio.Queue[discord.Message] = asyncio.Queue()

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author.bot:
            return
        data = await message.attachments[0].read()
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="right", custom_id="vote:right"))
        await message.reply(
            f"got {len(data)} bytes", embed=discord.Embed(title="Yotsuba"), view=view, mention_author=False
        )
        await got.put(message)

    async with connected(bot, fake):
        assert bot.user is not None and bot.user.id == fake.bot_user_id
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.get_channel(world.channel_id) is not None
        posted = await fake.post_message(
            world.channel_id, world.member_id, "who is this?", attachments=[("a.png", PNG_1x1, "image/png")]
        )
        message = await asyncio.wait_for(got.get(), 5)
        assert message.content == "who is this?"
        assert message.attachments[0].width == 1
        reply = await fake.wait_for_message(reply_to=posted)
        assert reply.content == f"got {len(PNG_1x1)} bytes"
        assert reply.embeds[0]["title"] == "Yotsuba"
        assert reply.custom_ids() == ["vote:right"]
        assert reply.allowed_mentions is not None and reply.allowed_mentions["replied_user"] is False


async def test_message_content_intent_rule(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot(message_content=False)
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    bot.add_listener(seen.put, "on_message")
    async with connected(bot, fake):
        assert fake.identifies[-1]["intents"] & (1 << 15) == 0
        await fake.post_message(
            world.channel_id,
            world.member_id,
            "secret",
            attachments=[("a.png", PNG_1x1, "image/png")],
            embeds=[{"title": "hidden"}],
        )
        plain = await asyncio.wait_for(seen.get(), 5)
        assert (plain.content, plain.attachments, plain.embeds) == ("", [], [])
        await fake.post_message(world.channel_id, world.member_id, f"<@{fake.bot_user_id}> look")
        mention = await asyncio.wait_for(seen.get(), 5)
        assert mention.content == f"<@{fake.bot_user_id}> look"
        await fake.post_dm(world.member_id, "in private")
        dm = await asyncio.wait_for(seen.get(), 5)
        assert dm.content == "in private" and dm.guild is None


async def test_message_content_intent_with_intent(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot(message_content=True)
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    bot.add_listener(seen.put, "on_message")
    async with connected(bot, fake):
        await fake.post_message(world.channel_id, world.member_id, "visible", embeds=[{"title": "shown"}])
        message = await asyncio.wait_for(seen.get(), 5)
        assert message.content == "visible" and message.embeds[0].title == "shown"


async def test_privileged_intent_not_allowed_closes_with_4014() -> None:
    async with FakeDiscord(message_content_intent_allowed=False) as fake:
        target = point_discord_py_at(fake.api_base, fake.gateway_url)
        try:
            fake.add_guild("g")
            bot = make_bot(message_content=True)
            with pytest.raises(discord.PrivilegedIntentsRequired):
                async with connected(bot, fake, timeout=5):
                    pass
        finally:
            target.restore()


async def test_bad_token_is_a_login_failure() -> None:
    async with FakeDiscord(required_token="right") as fake:
        target = point_discord_py_at(fake.api_base, fake.gateway_url)
        try:
            client = discord.Client(intents=discord.Intents.default())
            with pytest.raises(discord.LoginFailure):
                await client.login("wrong")
            await client.close()
        finally:
            target.restore()


async def test_resume_replays_missed_events_and_invalid_session_reidentifies(
    discord_world: DiscordWorld,
) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    bot.add_listener(seen.put, "on_message")
    resumed = asyncio.Event()

    async def identify_now(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's default hook sleeps 5 s before every re-IDENTIFY (Discord's pacing)."""

    bot.before_identify_hook = identify_now  # type: ignore[method-assign]

    async def on_resumed() -> None:
        resumed.set()

    bot.add_listener(on_resumed)
    async with connected(bot, fake):
        assert await fake.drop_connection() == 1
        missed = await fake.post_message(world.channel_id, world.member_id, "while you were away")
        message = await asyncio.wait_for(seen.get(), 10)
        assert message.id == missed
        await asyncio.wait_for(resumed.wait(), 5)
        assert fake.resume_count == 1 and fake.identify_count == 1
        assert fake.resumes[0].replayed >= 1 and fake.resumes[0].path == "/resume/"

        await fake.invalidate_session(resumable=False)
        await fake.wait_until(lambda: fake.identify_count == 2 or None, what="a second IDENTIFY")
        await fake.wait_until_ready()
        await fake.post_message(world.channel_id, world.member_id, "after re-identify")
        again = await asyncio.wait_for(seen.get(), 10)
        assert again.content == "after re-identify"
        assert fake.resume_count == 1


async def test_heartbeats_follow_hello_interval(discord_world: DiscordWorld) -> None:
    fake = discord_world.fake
    fake.heartbeat_interval_ms = 250
    bot = make_bot()
    async with connected(bot, fake):
        await fake.wait_until(
            lambda: len(fake.heartbeat_intervals()) >= 3 or None, timeout=5, what="4 heartbeats"
        )
        intervals = fake.heartbeat_intervals()
        # discord.py beats at once on HELLO, then every interval from its keep-alive thread.
        steady = sorted(intervals[1:])
        assert steady[0] >= 0.2 and steady[len(steady) // 2] <= 0.4, intervals
        assert bot.latency < 1.0


async def test_guild_joined_after_ready_and_sharded_client(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    fake.add_guild("first").add_channel("general")
    bot = commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
    )
    joined: asyncio.Queue[discord.Guild] = asyncio.Queue()
    bot.add_listener(joined.put, "on_guild_join")
    async with connected(bot, fake):
        assert fake.identifies[0]["shard"] == [0, 1]
        later = fake.add_guild("second")
        guild = await asyncio.wait_for(joined.get(), 5)
        assert guild.id == later.id and len(bot.guilds) == 2
