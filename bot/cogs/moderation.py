"""Moderators' commands: characters, scrapes, training, jobs and the model registry.

Each command carries `default_permissions(manage_guild=True)` (what Discord shows by default) and
`moderator_only()` (what we enforce: a guild may override the defaults in its settings). A refused
command writes nothing: the check runs before the callback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import UserFacingError
from bot.checks import moderator_only
from bot.render import NO_MENTIONS, known_line, notice_embed, safe_name
from catalog.characters import (
    NewCharacter,
    add_character,
    character_info,
    clean_subreddit,
    list_characters,
    remove_character,
    resolve_labels,
    search_characters,
)
from catalog.errors import CatalogError
from catalog.jobs import JobKind, ScrapeParams, TrainParams
from catalog.schema import Job, JobStatus

if TYPE_CHECKING:
    from bot.app import NamaeBot

log = logging.getLogger(__name__)

MOD_PERMISSIONS = discord.Permissions(manage_guild=True)
JOB_LINES = 15
LIST_LIMIT = 60


def split_list(text: str | None) -> list[str]:
    """'a, b; c' -> ['a', 'b', 'c'] (commas or semicolons; blanks dropped)."""
    if not text:
        return []
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


async def character_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    matches = await bot.in_thread(search_characters, bot.engine, current, limit=25)
    return [app_commands.Choice(name=name[:100], value=name[:100]) for _, name in matches]


async def version_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    entries = await bot.in_thread(bot.registry.versions)
    wanted = current.lower()
    return [
        app_commands.Choice(name=f"{e.version} ({e.status})", value=e.version)
        for e in reversed(entries)
        if wanted in e.version.lower()
    ][:25]


def describe_job(job: Job) -> str:
    status = JobStatus(job.status)
    what = job.kind
    if job.params.get("character"):
        what += f" {safe_name(job.params['character'])}"
    elif job.kind == "scrape":
        what += " (all characters)"
    line = f"`#{job.id}` **{what}** — {status.value}"
    if status == JobStatus.running:
        line += f" {round(job.progress * 100)}%"
    if job.message and status in (JobStatus.running, JobStatus.queued):
        line += f" · {safe_name(job.message, limit=120)}"
    if status == JobStatus.failed and job.error:
        line += f"\n> {safe_name(job.error.splitlines()[-1], limit=200)}"
    if job.requested_by:
        line += f" · by {safe_name(job.requested_by, limit=40)}"
    return line


class Moderation(commands.Cog):
    character = app_commands.Group(
        name="character",
        description="Characters the bot knows",
        guild_only=True,
        default_permissions=MOD_PERMISSIONS,
    )
    model = app_commands.Group(
        name="model",
        description="The classification model",
        guild_only=True,
        default_permissions=MOD_PERMISSIONS,
    )

    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot

    def _requested_by(self, interaction: discord.Interaction) -> str:
        return f"discord:{interaction.user.id}"

    def _names_changed(self) -> None:
        classify = self.bot.get_cog("Classify")
        if classify is not None:
            classify.forget_names()  # type: ignore[attr-defined]

    # -- characters ------------------------------------------------------------------------------

    @character.command(name="add", description="Add a character and queue a scrape of its sources")
    @app_commands.describe(
        name="The character's name",
        aliases="Other names, separated by commas",
        series="The series the character is from",
        subreddits="Subreddits dedicated to the character, separated by commas",
        title_subreddits="Subreddits whose post titles mention the character, separated by commas",
    )
    @moderator_only()
    async def character_add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100],
        aliases: str | None = None,
        series: str | None = None,
        subreddits: str | None = None,
        title_subreddits: str | None = None,
    ) -> None:
        spec = NewCharacter(
            name=name,
            aliases=split_list(aliases),
            series=series,
            subreddits=split_list(subreddits),
            title_subreddits=split_list(title_subreddits),
        )
        for subreddit in [*spec.subreddits, *spec.title_subreddits]:
            clean_subreddit(subreddit)  # refuse bad syntax before anything is written
        await self.bot.in_thread(add_character, self.bot.engine, spec)
        self._names_changed()
        job_id = await self.bot.in_thread(
            self.bot.jobs.enqueue,
            JobKind.scrape,
            ScrapeParams(character=name),
            requested_by=self._requested_by(interaction),
        )
        sources = len(spec.subreddits) + len(spec.title_subreddits)
        text = f"Added **{safe_name(name)}**"
        if spec.aliases:
            text += f" (also {', '.join(safe_name(a) for a in spec.aliases)})"
        text += f" with {sources} source{'s' if sources != 1 else ''}; scrape job `#{job_id}` is queued."
        if not sources:
            text += " Without subreddits there is nothing to scrape yet."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @character.command(name="remove", description="Stop scraping and predicting a character")
    @app_commands.autocomplete(name=character_autocomplete)
    @moderator_only()
    async def character_remove(self, interaction: discord.Interaction, name: str) -> None:
        removed = await self.bot.in_thread(remove_character, self.bot.engine, name)
        self._names_changed()
        await interaction.response.send_message(
            f"Removed **{safe_name(removed)}**: no more scrapes; its images and labels stay for tracing.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @character.command(name="list", description="Every active character")
    @moderator_only()
    async def character_list(self, interaction: discord.Interaction) -> None:
        characters = await self.bot.in_thread(list_characters, self.bot.engine)
        if not characters:
            text = "No characters yet. Add one with /character add."
        else:
            lines = [
                f"**{safe_name(c.name)}**"
                + (f" ({safe_name(c.series)})" if c.series else "")
                + f" — {c.images} images"
                for c in characters[:LIST_LIMIT]
            ]
            if len(characters) > LIST_LIMIT:
                lines.append(f"… and {len(characters) - LIST_LIMIT} more")
            text = "\n".join(lines)
        await interaction.response.send_message(
            embed=notice_embed(text, title=f"Characters ({len(characters)})"),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @character.command(name="info", description="A character's names, sources, images and last scrape")
    @app_commands.autocomplete(name=character_autocomplete)
    @moderator_only()
    async def character_info_command(self, interaction: discord.Interaction, name: str) -> None:
        info = await self.bot.in_thread(character_info, self.bot.engine, name)
        known = await self._known(info.id)
        embed = notice_embed(
            "\n".join(
                [
                    known,
                    f"Aliases: {', '.join(safe_name(a) for a in info.aliases) or 'none'}",
                    f"Series: {safe_name(info.series) if info.series else 'unknown'}",
                    f"Images: {info.images}",
                    f"Last scrape: {info.last_scrape or 'never'}",
                    f"Active: {'yes' if info.active else 'no (removed)'}",
                    "Sources:",
                    *(f"• {safe_name(s, limit=150)}" for s in info.sources),
                ]
            ),
            title=safe_name(info.name),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def _known(self, character_id: int) -> str:
        """Trained, known from N examples in the memory, or not yet (models.openset)."""
        classifier = self.bot.inference.classifier
        world = self.bot.inference.world
        labels = list(classifier.labels) if classifier is not None else []
        labels += world.memory.characters() if world is not None else []
        resolved = await self.bot.in_thread(resolve_labels, self.bot.engine, labels)
        mine = {label for label, hit in resolved.items() if hit is not None and hit[0] == character_id}
        return known_line(
            version=self.bot.inference.version,
            trained=classifier is not None and bool(mine & set(classifier.labels)),
            faces=sum(world.memory.count(label) for label in mine) if world is not None else 0,
            min_examples=self.bot.settings.memory.min_examples,
        )

    # -- work for the worker ---------------------------------------------------------------------

    @app_commands.command(name="rescrape", description="Queue a scrape of one character, or of all")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    @app_commands.autocomplete(character=character_autocomplete)
    @moderator_only()
    async def rescrape(self, interaction: discord.Interaction, character: str | None = None) -> None:
        params = ScrapeParams()
        if character:
            info = await self.bot.in_thread(character_info, self.bot.engine, character)
            if not info.active:
                raise CatalogError(f"{info.name} was removed; add it again to scrape it")
            params = ScrapeParams(character=info.name)
        job_id = await self.bot.in_thread(
            self.bot.jobs.enqueue, JobKind.scrape, params, requested_by=self._requested_by(interaction)
        )
        what = safe_name(params.character) if params.character else "every character"
        await interaction.response.send_message(
            f"Scrape of {what} queued as job `#{job_id}`. Follow it with /jobs.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="retrain", description="Queue training a new model (promoted if it is better)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    @moderator_only()
    async def retrain(self, interaction: discord.Interaction) -> None:
        job_id = await self.bot.in_thread(
            self.bot.jobs.enqueue,
            JobKind.train,
            TrainParams(promote=True),
            requested_by=self._requested_by(interaction),
        )
        await interaction.response.send_message(
            f"Training queued as job `#{job_id}`; the new model is used once it is promoted.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="jobs", description="Queued, running and finished jobs")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    @moderator_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        recent = await self.bot.in_thread(self.bot.jobs.recent, limit=JOB_LINES)
        text = "\n".join(describe_job(job) for job in recent) or "No jobs yet."
        await interaction.response.send_message(
            embed=notice_embed(text, title="Jobs"), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    # -- the model -------------------------------------------------------------------------------

    @model.command(name="info", description="The active model and the versions in the registry")
    @moderator_only()
    async def model_info(self, interaction: discord.Interaction) -> None:
        entries = await self.bot.in_thread(self.bot.registry.versions)
        lines = [f"In use by the bot: **{safe_name(self.bot.inference.version or 'none')}**"]
        for entry in reversed(entries[-10:]):
            line = f"`{entry.version}` {entry.status}"
            if entry.card is not None:
                f1 = entry.card.test_macro_f1
                line += f" · {len(entry.card.labels)} characters"
                if f1 is not None:
                    line += f" · test macro-F1 {f1:.3f}"
            if entry.note:
                line += f" · {safe_name(entry.note, limit=120)}"
            lines.append(line)
        await interaction.response.send_message(
            embed=notice_embed("\n".join(lines), title="Model"), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @model.command(name="promote", description="Make a version active (even if it scores lower)")
    @app_commands.autocomplete(version=version_autocomplete)
    @moderator_only()
    async def model_promote(self, interaction: discord.Interaction, version: str) -> None:
        from models.errors import RegistryError

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await self.bot.in_thread(self.bot.registry.promote, version, force=True)
        except RegistryError as exc:
            raise UserFacingError(str(exc)) from exc
        if result.promoted:
            await self.bot.inference.check_model()
        text = f"{safe_name(version)}: {safe_name(result.reason, limit=300)}"
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @model.command(name="rollback", description="Go back to the previously active version")
    @moderator_only()
    async def model_rollback(self, interaction: discord.Interaction) -> None:
        from models.errors import RegistryError

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            target = await self.bot.in_thread(self.bot.registry.rollback)
        except RegistryError as exc:
            raise UserFacingError(str(exc)) from exc
        await self.bot.inference.check_model()
        await interaction.followup.send(
            f"Rolled back to {safe_name(target)}.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Moderation(bot))
