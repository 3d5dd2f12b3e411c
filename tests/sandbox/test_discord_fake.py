"""Real discord.py (unmodified) against the fake Discord: interactions (slash commands, components,
modals, follow-ups), REST details and rate limits, and the harness API. The gateway's side
(connecting, intents, resuming, heartbeats, sharding) is `test_discord_gateway.py`."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from sandbox.discord import FakeDiscord
from sandbox.discord.running import connected
from tests.fixtures.discord import DiscordWorld, PNG_1x1, make_bot


class VoteButton(discord.ui.DynamicItem[discord.ui.Button], template=r"vote:(?P<guess>\w+)"):
    def __init__(self, guess: str) -> None:
        super().__init__(discord.ui.Button(label=guess, custom_id=f"vote:{guess}"))
        self.guess = guess

    @classmethod
    async def from_custom_id(cls, interaction, item, match):  # type: ignore[override]
        return cls(match["guess"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"voted {self.guess}", ephemeral=True)


class FixModal(discord.ui.Modal, title="Fix the name"):
    name = discord.ui.TextInput(label="Character", custom_id="fix:name", max_length=50)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"fixed to {self.name.value}")


def make_app_bot(guild_id: int) -> commands.Bot:
    bot = make_bot()
    guild = discord.Object(guild_id)
    character = app_commands.Group(name="character", description="Manage characters")

    @character.command(name="add", description="Add a character")
    @app_commands.describe(name="Full name", subreddit="Its subreddit")
    async def add(interaction: discord.Interaction, name: str, subreddit: str | None = None) -> None:
        await interaction.response.send_message(f"added {name} from r/{subreddit}")

    @add.autocomplete("name")
    async def name_complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = ["Yotsuba Nakano", "Miku Nakano", "Nino Nakano"]
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n.lower()]

    @app_commands.command(name="who", description="Who is in this image?")
    async def who(interaction: discord.Interaction, image: discord.Attachment, top: int = 3) -> None:
        await interaction.response.defer(thinking=True)
        data = await image.read()
        view = discord.ui.View(timeout=None)
        view.add_item(VoteButton("yotsuba"))
        select = discord.ui.Select(
            custom_id="pick",
            options=[
                discord.SelectOption(label="Miku", value="miku"),
                discord.SelectOption(label="Nino", value="nino"),
            ],
        )

        async def picked(select_interaction: discord.Interaction) -> None:
            await select_interaction.response.edit_message(content=f"picked {select.values[0]}", view=None)

        select.callback = picked
        view.add_item(select)
        await interaction.followup.send(f"{image.filename}: {len(data)} bytes, top {top}", view=view)

    @app_commands.command(name="fix", description="Fix a name")
    async def fix(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FixModal())

    @app_commands.context_menu(name="Identify")
    async def identify(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(f"identify: {message.content}", ephemeral=True)

    @app_commands.context_menu(name="Profile")
    async def profile(interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.send_message(f"profile: {member.name}", ephemeral=True)

    for command in (character, who, fix, identify, profile):
        bot.tree.add_command(command, guild=guild)
    bot.add_dynamic_items(VoteButton)

    async def setup_hook() -> None:
        await bot.tree.sync(guild=guild)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


async def test_slash_commands_sync_and_answer_within_three_seconds(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_app_bot(world.guild.id)
    async with connected(bot, fake):
        synced = {c["name"]: c for c in fake.registered_commands}
        assert set(synced) == {"character", "who", "fix", "Identify", "Profile"}
        assert synced["character"]["guild_id"] == str(world.guild.id)
        assert synced["Identify"]["type"] == 3

        handle = await fake.slash(
            world.guild.id,
            world.channel_id,
            world.member_id,
            "character add",
            {"name": "Yotsuba Nakano", "subreddit": "Yotsubros"},
        )
        callback = await handle.response()
        assert callback.type == 4 and callback.accepted and not callback.late
        assert callback.delay < 3.0
        assert (
            callback.data is not None and callback.data["content"] == "added Yotsuba Nakano from r/Yotsubros"
        )
        original = handle.original_message()
        assert original is not None and original.via == "interaction_response"

        choices = await fake.autocomplete(
            world.guild.id,
            world.channel_id,
            world.member_id,
            "character add",
            {"name": "nak"},
            focused="name",
        )
        assert [c["value"] for c in choices] == ["Yotsuba Nakano", "Miku Nakano", "Nino Nakano"]


async def test_deferred_followup_button_and_select(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_app_bot(world.guild.id)
    async with connected(bot, fake):
        handle = await fake.slash(
            world.guild.id,
            world.channel_id,
            world.member_id,
            "who",
            attachments={"image": ("face.png", PNG_1x1, "image/png")},
        )
        assert (await handle.response()).type == 5
        message = await handle.wait_original()
        assert message.content == f"face.png: {len(PNG_1x1)} bytes, top 3"
        assert message.custom_ids() == ["vote:yotsuba", "pick"]

        click = await fake.click(message.id, "vote:yotsuba", world.member_id)
        answer = await click.response()
        assert answer.data is not None and answer.data["content"] == "voted yotsuba"
        assert click.original_message() is not None and click.original_message().ephemeral  # type: ignore[union-attr]

        choose = await fake.choose(message.id, "pick", ["nino"], world.member_id)
        assert (await choose.response()).type == 7
        assert fake.recorded(message.id).content == "picked nino"
        assert fake.recorded(message.id).components == []


async def test_modal_and_context_menu(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_app_bot(world.guild.id)
    async with connected(bot, fake):
        handle = await fake.slash(world.guild.id, world.channel_id, world.member_id, "fix")
        modal = await handle.modal()
        assert modal["title"] == "Fix the name"
        submitted = await fake.submit_modal(modal["custom_id"], {"fix:name": "Miku Nakano"}, world.member_id)
        reply = await submitted.response()
        assert reply.data is not None and reply.data["content"] == "fixed to Miku Nakano"
        again = await fake.slash(world.guild.id, world.channel_id, world.member_id, "fix")
        by_label = await fake.submit_modal(
            (await again.modal())["custom_id"], {"Character": "Nino"}, world.member_id
        )
        assert (await by_label.response()).data["content"] == "fixed to Nino"  # type: ignore[index]

        posted = await fake.post_message(world.channel_id, world.member_id, "is this Nino?")
        menu = await fake.context_menu(world.guild.id, world.channel_id, world.member_id, "Identify", posted)
        answer = await menu.response()
        assert answer.data is not None and answer.data["content"] == "identify: is this Nino?"

        user_menu = await fake.context_menu(
            world.guild.id, world.channel_id, world.moderator_id, "Profile", target_user_id=world.member_id
        )
        shown = await user_menu.response()
        assert shown.data is not None and shown.data["content"] == "profile: alice"


async def test_rate_limit_headers_and_forced_429(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    async with connected(bot, fake):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        fake.force_rate_limit(method="POST", path_contains="/messages", retry_after=0.2)
        sent = await channel.send("after a 429")
        assert len(fake.rate_limited) == 1
        assert fake.recorded(sent.id).content == "after a 429"
        edited = await sent.edit(content="edited")
        assert edited.content == "edited" and fake.recorded(sent.id).edits[0].changes["content"] == "edited"
        async with channel.typing():
            pass
        assert fake.typing and fake.typing[-1][0] == world.channel_id


async def test_reply_to_deleted_message_and_missing_permissions(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    got: asyncio.Queue[discord.Message] = asyncio.Queue()
    bot.add_listener(got.put, "on_message")
    async with connected(bot, fake):
        posted = await fake.post_message(world.channel_id, world.member_id, "gone soon")
        message = await asyncio.wait_for(got.get(), 5)
        fake.delete_message(world.channel_id, posted)
        with pytest.raises(discord.HTTPException) as error:
            await message.reply("too late")
        assert error.value.status == 400 and "Unknown message" in str(error.value)

        world.guild.set_channel_overwrite(
            world.channel_id,
            world.guild.bot_role_id,
            deny=1 << 11,  # type: ignore[arg-type]
        )
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.Forbidden):
            await channel.send("muted")


async def test_files_sent_by_bot_are_recorded_and_served(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    async with connected(bot, fake):
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        import io

        sent = await channel.send("a file", file=discord.File(io.BytesIO(PNG_1x1), filename="crop.png"))
        recorded = fake.recorded(sent.id)
        assert recorded.files[0].name == "crop.png" and recorded.files[0].data == PNG_1x1
        assert await sent.attachments[0].read() == PNG_1x1


async def test_late_and_duplicate_callbacks_are_recorded(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    fake.interaction_deadline = 0.05
    bot = make_bot()
    release = asyncio.Event()

    @bot.tree.command(name="slow", description="Answers late")
    async def slow(interaction: discord.Interaction) -> None:
        await release.wait()
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as error:
            errors.append(error.code)

    errors: list[int] = []

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    async with connected(bot, fake):
        handle = await fake.slash(world.guild.id, world.channel_id, world.member_id, "slow")
        await asyncio.sleep(0.1)  # the test is about lateness: let the deadline pass on purpose
        release.set()
        callback = await handle.response()
        assert callback.late and not callback.accepted and callback.delay > 0.05
        await fake.wait_until(lambda: errors or None, timeout=5, what="the bot to see 10062")
        assert errors == [10062]


async def test_interaction_carries_member_permissions(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()
    seen: dict[str, object] = {}

    @bot.tree.command(name="perms", description="Show permissions")
    @app_commands.default_permissions(manage_guild=True)
    async def perms(interaction: discord.Interaction) -> None:
        assert isinstance(interaction.user, discord.Member)
        seen["manage_guild"] = interaction.permissions.manage_guild
        seen["app_send"] = interaction.app_permissions.send_messages
        seen["roles"] = [r.name for r in interaction.user.roles]
        await interaction.response.send_message("ok", ephemeral=True)

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    async with connected(bot, fake):
        assert fake.registered_command("perms")["default_member_permissions"] == str(1 << 5)
        handle = await fake.slash(world.guild.id, world.channel_id, world.moderator_id, "perms")
        await handle.response()
        assert seen == {"manage_guild": True, "app_send": True, "roles": ["@everyone", "moderator"]}


async def test_rest_protocol_details(discord_world: DiscordWorld) -> None:
    """Headers and error shapes discord.py depends on, checked on the wire."""
    fake = discord_world.fake
    api = fake.api_base
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/users/@me") as response:
            assert response.status == 401
        auth = {"Authorization": f"Bot {fake.token}"}
        async with http.get(f"{api}/users/@me", headers=auth) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            for header in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{header}" in response.headers
            assert (await response.json())["id"] == str(fake.bot_user_id)
        async with http.get(f"{api}/gateway/bot", headers=auth) as response:
            assert (await response.json())["url"] == f"ws://127.0.0.1:{fake.port}"
        fake.force_rate_limit(path_contains="/users/@me", retry_after=1.5, is_global=True)
        async with http.get(f"{api}/users/@me", headers=auth) as response:
            assert response.status == 429 and response.headers["Via"]
            body = await response.json()
            assert body["retry_after"] == 1.5 and body["global"] is True
        async with http.get(f"{api}/no/such/route", headers=auth) as response:
            assert response.status == 404
        assert fake.unhandled_requests[-1].path == "/api/v10/no/such/route"


async def test_bucket_exhaustion_answers_429() -> None:
    async with FakeDiscord(rate_limit=(2, 60.0)) as fake:
        guild = fake.add_guild("g")
        channel_id = guild.add_channel("c")
        url = f"{fake.api_base}/channels/{channel_id}/messages"
        auth = {"Authorization": f"Bot {fake.token}"}
        statuses = []
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(url, json={"content": "hi"}, headers=auth) as response:
                    statuses.append((response.status, response.headers.get("X-RateLimit-Remaining")))
        assert statuses == [(200, "1"), (200, "0"), (429, "0")]
        assert len(fake.sent_messages) == 2


async def test_interaction_callbacks_twice_answer_40060(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    fake.commands[None] = [{"id": "1", "name": "raw", "type": 1, "options": [], "description": "raw"}]
    handle = await fake.slash(world.guild.id, world.channel_id, world.member_id, "raw")
    url = f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback?with_response=1"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"type": 4, "data": {"content": "one"}}) as response:
            assert response.status == 200
            body = await response.json()
            assert body["interaction"]["response_message_id"] == body["resource"]["message"]["id"]
        async with http.post(url, json={"type": 4, "data": {"content": "two"}}) as response:
            assert response.status == 400 and (await response.json())["code"] == 40060
    assert [c.duplicate for c in handle.callbacks] == [False, True]


async def test_original_response_edit_followup_and_history(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    bot = make_bot()

    @bot.tree.command(name="steps", description="Edits and follows up")
    async def steps(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("working")
        await interaction.edit_original_response(content="done")
        original = await interaction.original_response()
        await interaction.followup.send(f"original was {original.content}", ephemeral=True)

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    async with connected(bot, fake):
        handle = await fake.slash(world.guild.id, world.channel_id, world.member_id, "steps")
        [followup] = await handle.followups(1)
        assert followup.content == "original was done" and followup.ephemeral
        original = handle.original_message()
        assert original is not None and original.content == "done" and len(original.edits) == 1
        await fake.post_message(world.channel_id, world.member_id, "older")
        channel = bot.get_channel(world.channel_id)
        assert isinstance(channel, discord.TextChannel)
        history = [m.content async for m in channel.history(limit=5)]
        assert history == ["older", "done"]
        # Waiting for an edit that never comes says what the message shows now.
        with pytest.raises(TimeoutError, match=r"an edit of message \d+ \(1 edit\(s\), content 'done'\)"):
            await fake.wait_for_edit(original.id, lambda m: "never" in m.content, timeout=0.05)
