"""Who may do what. Enforced here, on our side: a guild can override a command's default member
permissions in its integration settings, and that must not hand moderation to everyone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.app import NamaeBot


class NotModerator(app_commands.CheckFailure):
    """The member lacks Manage Server and the guild's moderator role."""

    def __init__(self) -> None:
        super().__init__("You need the Manage Server permission or this server's moderator role for that.")


class GuildOnly(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("That only works inside a server.")


def is_moderator(interaction: discord.Interaction) -> bool:
    """Manage Server (as Discord computed it for this interaction, channel overwrites included), or
    the moderator role the guild configured with /settings mod-role."""
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        return False
    if interaction.permissions.manage_guild or interaction.permissions.administrator:
        return True
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    role_id = bot.guild_settings.get(interaction.guild_id).mod_role_id
    return role_id is not None and any(role.id == role_id for role in interaction.user.roles)


def moderator_only():
    """An app-command check; the global error handler turns its failure into a plain refusal."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None:
            raise GuildOnly()
        bot: NamaeBot = interaction.client  # type: ignore[assignment]
        allowed = await bot.in_thread(is_moderator, interaction)
        if not allowed:
            raise NotModerator()
        return True

    return app_commands.check(predicate)


async def may_moderate(interaction: discord.Interaction) -> bool:
    """`moderator_only`'s test without raising: for autocomplete and buttons of moderator commands."""
    if interaction.guild_id is None:
        return False
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    return await bot.in_thread(is_moderator, interaction)
