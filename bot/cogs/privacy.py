"""/privacy says what is kept and for how long; /forget deletes a member's votes and predictions
(members for themselves, moderators for anyone). Expired predictions are purged daily.

Both also work in a DM with the bot: what is kept about you, and deleting it, should not need a
server (in a DM, /forget deletes your own data only)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import outgoing
from bot.app import UserFacingError
from bot.checks import is_moderator
from bot.render import notice_embed
from catalog.retention import forget_member, purge_expired

if TYPE_CHECKING:
    from bot.app import NamaeBot

log = logging.getLogger(__name__)

PURGE_EVERY_S = 24 * 3600


def privacy_text(retention_days: int) -> str:
    return "\n".join(
        [
            (
                "**What I keep when I answer a picture** (in channels where moderators turned me on, "
                "or when you use /classify or *Identify character*):"
            ),
            (
                "• the picture's bytes and, for each face, a small crop — so corrections can become "
                "training data;"
            ),
            (
                "• a link to the message, its server, channel and author ids, and my answer "
                "(top guesses, model version);"
            ),
            "• your votes when you press Right or Fix (one per answer; changing it replaces it).",
            "",
            "**What I do not keep:** message text, names, or anything from `/classify private:True`.",
            "",
            (
                f"**How long:** answers nobody corrected are deleted after {retention_days} days, with "
                "pictures nothing else needs. Corrected answers stay as training labels."
            ),
            "",
            (
                "**Deleting:** `/forget` deletes your votes, my answers to your messages and the pictures "
                "you posted; moderators can do it for any member, and operators with "
                "`namae forget --member ID`."
            ),
        ]
    )


class Privacy(commands.Cog):
    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._task = self.bot.spawn(self._purge_daily(), name="namae-retention")

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _purge_daily(self) -> None:
        days = self.bot.settings.discord.prediction_retention_days
        while True:
            try:
                counts = await self.bot.in_thread(purge_expired, self.bot.engine, self.bot.store, days=days)
                if counts.predictions:
                    log.info("retention: deleted %s", counts.as_dict())
            except Exception:
                log.exception("retention purge failed; will try again")
            await asyncio.sleep(PURGE_EVERY_S)

    @app_commands.command(name="privacy", description="What the bot stores about you, and for how long")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def privacy(self, interaction: discord.Interaction) -> None:
        text = privacy_text(self.bot.settings.discord.prediction_retention_days)
        await outgoing.respond(interaction, embed=notice_embed(text, title="Privacy"))

    @app_commands.command(
        name="forget", description="Delete a member's votes, predictions and posted pictures"
    )
    @app_commands.describe(member="Moderators only: whose data to delete (default: yours)")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def forget(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        target = member or interaction.user
        if target.id != interaction.user.id and not await self.bot.in_thread(is_moderator, interaction):
            raise UserFacingError("only moderators can delete another member's data")
        await interaction.response.defer(ephemeral=True, thinking=True)
        counts = await self.bot.in_thread(forget_member, self.bot.engine, target.id, self.bot.store)
        log.info(
            "forgot member %s at the request of %s: %s", target.id, interaction.user.id, counts.as_dict()
        )
        whose = "your" if target.id == interaction.user.id else f"<@{target.id}>'s"
        await outgoing.respond(
            interaction,
            f"Deleted {whose} data: {counts.votes} votes, {counts.predictions} predictions, "
            f"{counts.images} pictures.",
        )


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Privacy(bot))
