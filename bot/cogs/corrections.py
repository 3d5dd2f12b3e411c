"""Corrections: Right / Fix on a reply become votes; the quorum or a moderator turns them into
labels; ties and disagreements with the source label wait in `/corrections review`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import outgoing
from bot.app import UserFacingError
from bot.checks import is_moderator, moderator_only
from bot.keyed_locks import KeyedLocks
from bot.moderation_views import CORRECTION_ITEMS, review_view
from bot.render import notice_embed, percent, safe_name, tally_line
from bot.views import NONE_VALUE, CorrectionActions, picker_view
from catalog.characters import name_key, search_characters
from catalog.labels import NOT_A_CHARACTER
from catalog.predictions import get_prediction, predictions_of_reply
from catalog.reviews import open_reviews, resolve_review
from catalog.votes import VoteOutcome, cast_vote, tallies

if TYPE_CHECKING:
    from bot.app import NamaeBot

log = logging.getLogger(__name__)

REVIEW_PAGE = 4


class Corrections(commands.Cog, CorrectionActions):
    corrections = app_commands.Group(
        name="corrections",
        description="The moderators' queue of disputed corrections",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot
        self._reply_locks = KeyedLocks()  # per reply, only while an edit holds or awaits it

    # -- votes ----------------------------------------------------------------------------------

    async def vote_right(self, interaction: discord.Interaction, prediction_id: int) -> None:
        prediction = await self.bot.in_thread(
            get_prediction, self.bot.engine, prediction_id, guild_id=interaction.guild_id
        )
        if not prediction.candidates:
            raise UserFacingError("there is no guess to confirm here; use Fix instead")
        best = prediction.candidates[0][0]
        known = (await self.bot.names.resolve([best]))[best]
        if known is None:
            raise UserFacingError(
                f"{safe_name(best)} is not in the catalog any more; use Fix to pick the right character"
            )
        outcome = await self._cast(interaction, prediction_id, character_id=known[0])
        # The button sits on the reply itself: update its vote line as the response.
        assert interaction.message is not None
        await outgoing.update(interaction, await self._votes_content(interaction.message.id))
        await outgoing.respond(interaction, _confirmation(outcome, known[1]))

    async def open_picker(self, interaction: discord.Interaction, prediction_id: int) -> None:
        prediction = await self.bot.in_thread(
            get_prediction, self.bot.engine, prediction_id, guild_id=interaction.guild_id
        )
        labels = [label for label, _ in prediction.candidates]
        names = await self.bot.names.resolve(labels)
        choices: list[tuple[int, str, str | None]] = []
        for label, probability in prediction.candidates:
            known = names.get(label)
            if known is not None and all(known[0] != c[0] for c in choices):
                choices.append((known[0], known[1], f"model: {percent(probability)}"))
        others = await self.bot.in_thread(search_characters, self.bot.engine, "", limit=24)
        for character_id, name in others:
            if len(choices) >= 24:
                break
            if all(character_id != c[0] for c in choices):
                choices.append((character_id, name, None))
        tag = f" {prediction.tag}" if prediction.tag else ""
        await outgoing.respond(
            interaction,
            f"Who is in answer{tag}? Pick below, or search by name if they are not listed.",
            view=picker_view(prediction_id, choices),
        )

    async def vote_pick(self, interaction: discord.Interaction, prediction_id: int, value: str) -> None:
        if value == NONE_VALUE:
            outcome = await self._cast(interaction, prediction_id, not_character=True)
            chosen = NOT_A_CHARACTER
        else:
            try:
                character_id = int(value)
            except ValueError:
                raise UserFacingError("that choice is not a character") from None
            outcome = await self._cast(interaction, prediction_id, character_id=character_id)
            chosen = await self._character_name(character_id) or "that character"
        await outgoing.update(interaction, _confirmation(outcome, chosen), view=None)
        await self.refresh_reply(prediction_id, interaction.guild_id)

    async def search_submitted(self, interaction: discord.Interaction, prediction_id: int, text: str) -> None:
        await self.bot.in_thread(
            get_prediction, self.bot.engine, prediction_id, guild_id=interaction.guild_id
        )
        matches = await self.bot.in_thread(search_characters, self.bot.engine, text, limit=25)
        if not matches:
            raise UserFacingError(
                f"no character is called {safe_name(text)}; a moderator can /character add it"
            )
        exact = [m for m in matches if name_key(m[1]) == name_key(text)]
        if len(matches) == 1 or len(exact) == 1:
            character_id, name = (exact or matches)[0]
            outcome = await self._cast(interaction, prediction_id, character_id=character_id)
            await outgoing.respond(interaction, _confirmation(outcome, name))
            await self.refresh_reply(prediction_id, interaction.guild_id)
            return
        await outgoing.respond(
            interaction,
            f"{len(matches)} characters match {safe_name(text)}; pick one:",
            view=picker_view(prediction_id, [(cid, name, None) for cid, name in matches[:24]]),
        )

    async def _cast(
        self,
        interaction: discord.Interaction,
        prediction_id: int,
        *,
        character_id: int | None = None,
        not_character: bool = False,
    ) -> VoteOutcome:
        moderator = await self.bot.in_thread(is_moderator, interaction)
        return await self.bot.in_thread(
            cast_vote,
            self.bot.engine,
            prediction_id=prediction_id,
            member_id=interaction.user.id,
            guild_id=interaction.guild_id,
            character_id=character_id,
            not_character=not_character,
            is_moderator=moderator,
            quorum=self.bot.settings.discord.quorum,
        )

    async def _character_name(self, character_id: int) -> str | None:
        from catalog.db import session_scope
        from catalog.schema import Character

        def lookup() -> str | None:
            with session_scope(self.bot.engine) as session:
                character = session.get(Character, character_id)
                return character.name if character is not None else None

        return await self.bot.in_thread(lookup)

    # -- the reply's vote line ----------------------------------------------------------------

    async def _votes_content(self, reply_message_id: int) -> str | None:
        predictions = await self.bot.in_thread(predictions_of_reply, self.bot.engine, reply_message_id)
        if not predictions:
            return None
        counts = await self.bot.in_thread(tallies, self.bot.engine, [p.id for p in predictions])
        lines = []
        for prediction in predictions:
            tally = counts.get(prediction.id)
            if tally is None or not tally.total:
                continue
            line = tally_line(tally).removeprefix("-# ")
            lines.append(f"-# {prediction.tag or ''} {line}".replace("-#  ", "-# "))
        return outgoing.fit_lines(lines, outgoing.CONTENT_MAX) if lines else None

    async def refresh_reply(self, prediction_id: int, guild_id: int | None) -> None:
        """Show the new counts on the public reply (editing it by id: the vote came from elsewhere)."""
        prediction = await self.bot.in_thread(
            get_prediction, self.bot.engine, prediction_id, guild_id=guild_id
        )
        if prediction.reply_message_id is None or prediction.channel_id is None:
            return
        async with self._reply_locks(prediction.reply_message_id):
            content = await self._votes_content(prediction.reply_message_id)
            channel = self.bot.get_partial_messageable(prediction.channel_id, guild_id=guild_id)
            try:
                await outgoing.edit(channel.get_partial_message(prediction.reply_message_id), content)
            except discord.HTTPException as exc:
                # An ephemeral reply (context menu) cannot be edited later; the vote still counts.
                log.debug("vote line of reply %s not updated: %s", prediction.reply_message_id, exc)

    # -- the review queue ---------------------------------------------------------------------

    @corrections.command(name="review", description="Disputed corrections waiting for a moderator")
    @moderator_only()
    async def review_command(self, interaction: discord.Interaction) -> None:
        await self.show_reviews(interaction, 0, edit=False)

    async def show_reviews(self, interaction: discord.Interaction, offset: int, *, edit: bool) -> None:
        if not await self.bot.in_thread(is_moderator, interaction):
            raise UserFacingError("only moderators can review corrections")
        assert interaction.guild_id is not None
        items, total = await self.bot.in_thread(
            open_reviews, self.bot.engine, interaction.guild_id, offset=offset, limit=REVIEW_PAGE
        )
        if not items and offset > 0:
            offset = 0
            items, total = await self.bot.in_thread(
                open_reviews, self.bot.engine, interaction.guild_id, offset=0, limit=REVIEW_PAGE
            )
        if not items:
            embed = notice_embed("Nothing to review. 🎉", title="Corrections review")
            view = None
        else:
            lines = []
            for item in items:
                where = f" ([message]({item.jump_url}))" if item.jump_url else ""
                lines.append(
                    f"**#{item.id}** {safe_name(item.reason, limit=300)}{where}\n"
                    f"approve → label **{safe_name(item.proposed)}**"
                )
            embed = notice_embed("\n\n".join(lines), title=f"Corrections review ({total} open)")
            embed.set_footer(text=f"{offset + 1}-{offset + len(items)} of {total}")
            next_offset = offset + REVIEW_PAGE if offset + REVIEW_PAGE < total else None
            previous_offset = max(0, offset - REVIEW_PAGE) if offset > 0 else None
            view = review_view([item.id for item in items], next_offset, previous_offset)
        if edit:
            await outgoing.update(interaction, embed=embed, view=view)
        else:
            await outgoing.respond(interaction, embed=embed, view=view)

    async def resolve_review(
        self, interaction: discord.Interaction, review_id: int, *, approve: bool
    ) -> None:
        if not await self.bot.in_thread(is_moderator, interaction):
            raise UserFacingError("only moderators can review corrections")
        assert interaction.guild_id is not None
        result = await self.bot.in_thread(
            resolve_review,
            self.bot.engine,
            review_id,
            approve=approve,
            moderator_id=interaction.user.id,
            guild_id=interaction.guild_id,
        )
        log.info("review %s %s by %s", review_id, result, interaction.user.id)
        await self.show_reviews(interaction, 0, edit=True)
        await outgoing.respond(interaction, f"Review #{review_id}: {safe_name(result)}.")


def _confirmation(outcome: VoteOutcome, chosen: str) -> str:
    name = safe_name(chosen)
    verb = "changed your vote to" if outcome.replaced else "recorded your vote:"
    text = f"Thanks, {verb} {name}."
    if outcome.status == "labelled":
        text += f" That settles it: the catalog now labels it {safe_name(outcome.tally.label or chosen)}."
    elif outcome.status == "moderator":
        text += " As a moderator's decision, it is now the label."
    elif outcome.status == "review":
        text += " The votes disagree, so a moderator will look at it."
    elif outcome.status == "unlabellable":
        text += " (This picture was not kept, so it cannot become a label.)"
    return text


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Corrections(bot))
    bot.add_dynamic_items(*CORRECTION_ITEMS)


async def teardown(bot: NamaeBot) -> None:
    bot.remove_dynamic_items(*CORRECTION_ITEMS)
