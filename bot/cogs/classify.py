"""Classification: the listener that answers every image of a message in an enabled channel,
`/classify`, and the message context menu "Identify character".

The pieces live beside it: which images a message holds (`bot.sources`), reading and answering
them (`bot.answering`), what the reply shows (`bot.replies`, pure) and how it looks
(`bot.render`, `bot.views`); this cog decides when to answer, records the predictions behind the
buttons and sends the reply (`bot.outgoing`).

In DMs, `/classify` answers privately: nothing is kept and there are no Right/Fix buttons
(corrections are votes of a server's members, and a DM has no server to count them in).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import outgoing
from bot.answering import ImageAnswerer, Outcome, too_large
from bot.cooldowns import Cooldowns
from bot.inference import NoModel
from bot.render import reply_embed
from bot.replies import compose_reply, image_records, labels_of
from bot.sources import Collected, ImageSource, collect_sources, is_image_attachment
from bot.views import MAX_ANSWER_BUTTONS, answer_buttons
from catalog.predictions import MessageContext, attach_reply, record_predictions
from catalog.retention import discard_predictions
from media.boxes import same_face
from media.decode import ImageRejected

if TYPE_CHECKING:
    from bot.app import NamaeBot

log = logging.getLogger(__name__)

COOLDOWN_EMOJI = "⏳"


class Classify(commands.Cog):
    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot
        self.settings = bot.settings.discord
        self.allowed_hosts = {h.lower() for h in self.settings.allowed_hosts}
        self.cooldowns = Cooldowns(self.settings)
        self.answerer = ImageAnswerer(bot.settings, bot.inference, exempt_networks=bot.fetch_exempt_networks)
        self.ctx_menu = app_commands.ContextMenu(
            name="Identify character",
            callback=self.identify_menu,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )
        self.ctx_menu.guild_only = True  # it records answers to a server's message
        bot.tree.add_command(self.ctx_menu)

    async def cog_load(self) -> None:
        await self.answerer.start()

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.ctx_menu.name, type=self.ctx_menu.type)
        await self.answerer.close()

    # -- the reply ------------------------------------------------------------------------------

    async def _reply(
        self,
        outcomes: list[Outcome],
        *,
        threshold: float | None,
        context: MessageContext | None,
        problems: Sequence[tuple[str, str]] = (),
        dropped: int = 0,
    ) -> tuple[discord.Embed, discord.ui.View | None, list[int]]:
        """The reply's embed and buttons, and the ids of the predictions recorded for it: with a
        `context` they are recorded first, so that the buttons can carry their ids."""
        names = await self.bot.names.display(labels_of(outcomes))
        ids: list[list[int]] = []
        if context is not None:
            records = await self.bot.in_thread(image_records, outcomes, threshold)
            if records:
                ids = await self.bot.in_thread(
                    record_predictions, self.bot.engine, self.bot.store, context, records, same_face=same_face
                )
        plan = compose_reply(
            outcomes,
            names=names,
            threshold=threshold,
            prediction_ids=ids,
            problems=problems,
            dropped=dropped,
            max_images=self.settings.max_images_per_message,
            max_buttons=MAX_ANSWER_BUTTONS,
            model_version=self.bot.inference.version or "?",
        )
        embed = reply_embed(plan.images, plan.model_version, note=plan.note)
        return embed, answer_buttons(plan.buttons), [pid for image_ids in ids for pid in image_ids]

    # -- auto-classification ------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None:
            return
        reply_id: int | None = None
        try:
            reply_id = await self._answer_message(message)
        finally:
            # Every message is marked handled, ignored ones too (None), so that whoever waits on
            # it (tests, the demo) never races the bot's decision.
            await self.bot.answered.mark(message.id, reply_id)

    async def _answer_message(self, message: discord.Message) -> int | None:
        """Classify and reply; the reply's id, or None when the message is left alone."""
        assert message.guild is not None
        config = await self.bot.in_thread(self.bot.guild_settings.get, message.guild.id)
        channel_ids = {message.channel.id, getattr(message.channel, "parent_id", None)}
        if not config.auto_classify or not any(c in config.channel_ids for c in channel_ids if c):
            return None
        collected = collect_sources(
            message, allowed_hosts=self.allowed_hosts, limit=self.settings.max_images_per_message
        )
        if not collected.sources:
            return None
        if self.cooldowns.retry_after(message.guild.id, message.author.id) is not None:
            log.info("classification cooldown for member %s in guild %s", message.author.id, message.guild.id)
            await _quietly(message.add_reaction(COOLDOWN_EMOJI))
            return None
        try:
            outcomes = await self.answerer.answer(collected)
        except NoModel as exc:
            await _quietly(outgoing.reply(message, str(exc)))
            return None
        if not outcomes:
            return None  # every image was a link we may not fetch
        context = MessageContext(
            guild_id=message.guild.id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            jump_url=message.jump_url,
            model_version=self.bot.inference.version or "?",
        )
        embed, view, ids = await self._reply(
            outcomes, threshold=config.threshold, context=context, dropped=collected.dropped
        )
        try:
            sent = await outgoing.reply(message, embed=embed, view=view)
        except discord.HTTPException as exc:
            # The message was deleted while we worked (or we may not post here): keep nothing.
            log.info("could not answer message %s (%s); discarding its predictions", message.id, exc.text)
            await self.bot.in_thread(
                discard_predictions, self.bot.engine, self.bot.store, ids, message.jump_url
            )
            return None
        await self.bot.in_thread(attach_reply, self.bot.engine, ids, sent.id)
        return sent.id

    # -- asked for ----------------------------------------------------------------------------

    def _check_cooldown(self, interaction: discord.Interaction) -> None:
        hit = self.cooldowns.retry_after(interaction.guild_id, interaction.user.id)
        if hit is not None:
            wait, bucket = hit
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(bucket.rate, bucket.per), wait)

    async def _threshold(self, guild_id: int | None) -> float | None:
        """The guild's own threshold, if it set one (None: the model card's thresholds)."""
        if guild_id is None:
            return self.settings.default_threshold
        return (await self.bot.in_thread(self.bot.guild_settings.get, guild_id)).threshold

    @app_commands.command(name="classify", description="Who is in this picture?")
    @app_commands.describe(image="The picture", private="Only you see the answer, and nothing is kept")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def classify_command(
        self, interaction: discord.Interaction, image: discord.Attachment, private: bool = False
    ) -> None:
        self._check_cooldown(interaction)
        if not is_image_attachment(image):
            raise ImageRejected("not_an_image", f"{image.filename} is not an image.")
        if image.size > self.settings.max_image_bytes:
            raise ImageRejected(
                "too_large", f"{image.filename} is {too_large(image.size, self.settings.max_image_bytes)}."
            )
        # Outside a server nothing is recorded and no buttons are shown (see the module docstring).
        keep = not private and interaction.guild_id is not None
        await interaction.response.defer(ephemeral=private, thinking=True)
        outcomes = await self.answerer.answer(Collected([ImageSource.of_attachment(image)]))
        context = self._interaction_context(interaction, None, interaction.user.id) if keep else None
        embed, view, ids = await self._reply(
            outcomes, threshold=await self._threshold(interaction.guild_id), context=context
        )
        sent = await outgoing.follow_up(interaction, embed=embed, view=view, ephemeral=private)
        if ids:
            await self.bot.in_thread(attach_reply, self.bot.engine, ids, sent.id)

    async def identify_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        self._check_cooldown(interaction)
        collected = collect_sources(
            message,
            allowed_hosts=self.allowed_hosts,
            limit=self.settings.max_images_per_message,
            explicit=True,
        )
        if not collected.sources and not collected.problems:
            await outgoing.respond(interaction, "That message has no pictures I can look at.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcomes = await self.answerer.answer(collected)
        context = self._interaction_context(interaction, message, message.author.id)
        embed, view, ids = await self._reply(
            outcomes,
            threshold=await self._threshold(interaction.guild_id),
            context=context,
            problems=collected.problems,
            dropped=collected.dropped,
        )
        sent = await outgoing.follow_up(interaction, embed=embed, view=view)
        if ids:
            await self.bot.in_thread(attach_reply, self.bot.engine, ids, sent.id)

    def _interaction_context(
        self, interaction: discord.Interaction, message: discord.Message | None, author_id: int
    ) -> MessageContext:
        jump = (
            message.jump_url
            if message is not None
            else f"https://discord.com/channels/{interaction.guild_id or '@me'}/{interaction.channel_id}"
        )
        return MessageContext(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            message_id=message.id if message is not None else None,
            author_id=author_id,
            jump_url=jump,
            model_version=self.bot.inference.version or "?",
        )


async def _quietly(coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except discord.HTTPException as exc:
        log.debug("ignored Discord error: %s", exc)


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Classify(bot))
