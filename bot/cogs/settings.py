"""/settings: where the bot classifies, how sure it must be, who moderates (per guild)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import outgoing
from bot.checks import moderator_only
from bot.render import notice_embed
from catalog.guilds import GuildConfig

if TYPE_CHECKING:
    from bot.app import NamaeBot


def describe(config: GuildConfig) -> str:
    channels = ", ".join(f"<#{c}>" for c in config.channel_ids) or "none (classification is off)"
    role = f"<@&{config.mod_role_id}>" if config.mod_role_id else "none (Manage Server only)"
    return "\n".join(
        [
            f"Channels: {channels}",
            (
                f"Threshold: {config.threshold:.2f} (answers below it say 'not sure')"
                if config.threshold is not None
                else "Threshold: the model's own, per character (fitted for precision when it was trained)"
            ),
            f"Moderator role: {role}",
            f"Auto-classify: {'on' if config.auto_classify else 'off'}",
        ]
    )


class Settings(commands.Cog):
    settings = app_commands.Group(
        name="settings",
        description="This server's settings for the bot",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot

    async def _show(self, interaction: discord.Interaction, config: GuildConfig, headline: str) -> None:
        # Channel and role mentions render as names; AllowedMentions.none() keeps them from pinging.
        await outgoing.respond(interaction, embed=notice_embed(describe(config), title=headline))

    @settings.command(name="show", description="The current settings")
    @moderator_only()
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.in_thread(self.bot.guild_settings.get, interaction.guild_id)
        await self._show(interaction, config, "Settings")

    @settings.command(name="channels", description="Turn classification on or off in a channel")
    @app_commands.describe(channel="The channel", enabled="Classify every picture posted there")
    @moderator_only()
    async def channels(
        self, interaction: discord.Interaction, channel: discord.TextChannel, enabled: bool = True
    ) -> None:
        assert interaction.guild_id is not None
        store = self.bot.guild_settings
        change = store.enable_channel if enabled else store.disable_channel
        config = await self.bot.in_thread(change, interaction.guild_id, channel.id)
        await self._show(
            interaction, config, f"Classification {'on' if enabled else 'off'} in #{channel.name}"
        )

    @settings.command(name="threshold", description="Below this confidence the answer says 'not sure'")
    @app_commands.describe(value="Between 0 and 1; leave empty for the model's own thresholds")
    @moderator_only()
    async def threshold(
        self, interaction: discord.Interaction, value: app_commands.Range[float, 0.0, 1.0] | None = None
    ) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.in_thread(self.bot.guild_settings.set_threshold, interaction.guild_id, value)
        await self._show(interaction, config, "Threshold changed")

    @settings.command(name="mod-role", description="Members with this role count as moderators")
    @app_commands.describe(role="The role; leave empty to rely on Manage Server only")
    @moderator_only()
    async def mod_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.in_thread(
            self.bot.guild_settings.set_mod_role, interaction.guild_id, role.id if role else None
        )
        await self._show(interaction, config, "Moderator role changed")

    @settings.command(name="auto-classify", description="Answer pictures on its own in the enabled channels")
    @app_commands.describe(mode="on: answer every picture in the enabled channels; off: only when asked")
    @moderator_only()
    async def auto_classify(self, interaction: discord.Interaction, mode: Literal["on", "off"]) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.in_thread(
            self.bot.guild_settings.set_auto_classify, interaction.guild_id, mode == "on"
        )
        await self._show(interaction, config, f"Auto-classify {mode}")


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Settings(bot))
