"""Moderators' commands: characters, scrapes, training, jobs and the model registry.

Each command carries `default_permissions(manage_guild=True)` (what Discord shows by default) and
`moderator_only()` (what we enforce: a guild may override the defaults in its settings). A refused
command writes nothing: the check runs before the callback. Autocomplete answers moderators only,
by the same check (it would otherwise list the catalog to anyone a guild lets see the command).

Every text option has a `max_length` within what the catalog accepts, and every answer is fitted
to Discord's limits: long lists are paged (`/character list`) or counted ("and 40 more").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import outgoing
from bot.app import UserFacingError
from bot.checks import may_moderate, moderator_only
from bot.moderation_views import MODERATION_ITEMS, pages_view
from bot.render import known_line, notice_embed, safe_name
from bot.views import CharacterPages
from catalog.characters import (
    NAME_MAX,
    CharacterInfo,
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
CHARACTERS_PER_PAGE = 15
# Text options: a name is at most NAME_MAX (the catalog's limit); lists are comma-separated.
ALIASES_MAX = 2000
SUBREDDITS_MAX = 1000
VERSION_MAX = 40  # the registry's version names (catalog column)
ALIASES_SHOWN = 1000  # characters of aliases repeated in the /character add confirmation


def split_list(text: str | None) -> list[str]:
    """'a, b; c' -> ['a', 'b', 'c'] (commas or semicolons; blanks dropped)."""
    if not text:
        return []
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


async def character_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    if not await may_moderate(interaction):
        return []
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    matches = await bot.in_thread(search_characters, bot.engine, current, limit=25)
    return outgoing.choices([(name, name) for _, name in matches])


async def version_autocomplete(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    if not await may_moderate(interaction):
        return []
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    entries = await bot.in_thread(bot.registry.versions)
    wanted = current.lower()
    return outgoing.choices(
        [(f"{e.version} ({e.status})", e.version) for e in reversed(entries) if wanted in e.version.lower()]
    )


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


def character_line(info: CharacterInfo) -> str:
    series = f" ({safe_name(info.series)})" if info.series else ""
    return f"**{safe_name(info.name)}**{series} — {info.images} images"


class Moderation(commands.Cog, CharacterPages):
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
        self.bot.names.forget()

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
        name: app_commands.Range[str, 1, NAME_MAX],
        aliases: app_commands.Range[str, 1, ALIASES_MAX] | None = None,
        series: app_commands.Range[str, 1, NAME_MAX] | None = None,
        subreddits: app_commands.Range[str, 1, SUBREDDITS_MAX] | None = None,
        title_subreddits: app_commands.Range[str, 1, SUBREDDITS_MAX] | None = None,
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
            also = outgoing.join_limited([safe_name(a) for a in spec.aliases], ALIASES_SHOWN)
            text += f" (also {also})"
        text += f" with {sources} source{'s' if sources != 1 else ''}; scrape job `#{job_id}` is queued."
        if not sources:
            text += " Without subreddits there is nothing to scrape yet."
        await outgoing.respond(interaction, text)

    @character.command(name="remove", description="Stop scraping and predicting a character")
    @app_commands.describe(name="The character's name or one of its aliases")
    @app_commands.autocomplete(name=character_autocomplete)
    @moderator_only()
    async def character_remove(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, NAME_MAX]
    ) -> None:
        removed = await self.bot.in_thread(remove_character, self.bot.engine, name)
        self._names_changed()
        await outgoing.respond(
            interaction,
            f"Removed **{safe_name(removed)}**: no more scrapes; its images and labels stay for tracing.",
        )

    @character.command(name="list", description="Every active character")
    @moderator_only()
    async def character_list(self, interaction: discord.Interaction) -> None:
        await self.show_characters(interaction, 0, edit=False)

    async def show_characters(self, interaction: discord.Interaction, page: int, *, edit: bool) -> None:
        """One page of the character list, with Previous / Next buttons when there are more."""
        if not await may_moderate(interaction):
            raise UserFacingError("only moderators can list the characters")
        characters = await self.bot.in_thread(list_characters, self.bot.engine)
        if not characters:
            embed = notice_embed("No characters yet. Add one with /character add.", title="Characters (0)")
            pages: list[list[str]] = [[]]
        else:
            pages = outgoing.paginate([character_line(c) for c in characters], per_page=CHARACTERS_PER_PAGE)
            page = min(max(page, 0), len(pages) - 1)
            embed = notice_embed("\n".join(pages[page]), title=f"Characters ({len(characters)})")
            if len(pages) > 1:
                embed.set_footer(text=f"page {page + 1} of {len(pages)}")
        view = pages_view(page, len(pages))
        if edit:
            await outgoing.update(interaction, embed=embed, view=view)
        else:
            await outgoing.respond(interaction, embed=embed, view=view)

    @character.command(name="info", description="A character's names, sources, images and last scrape")
    @app_commands.describe(name="The character's name or one of its aliases")
    @app_commands.autocomplete(name=character_autocomplete)
    @moderator_only()
    async def character_info_command(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, NAME_MAX]
    ) -> None:
        info = await self.bot.in_thread(character_info, self.bot.engine, name)
        aliases = outgoing.join_limited([safe_name(a) for a in info.aliases], ALIASES_SHOWN) or "none"
        lines = [
            await self._known(info.id),
            f"Aliases: {aliases}",
            f"Series: {safe_name(info.series) if info.series else 'unknown'}",
            f"Images: {info.images}",
            f"Last scrape: {info.last_scrape or 'never'}",
            *(
                [f"Last attempt: {info.last_attempt} (did not finish)"]
                if info.last_attempt != info.last_scrape
                else []
            ),
            f"Active: {'yes' if info.active else 'no (removed)'}",
            "Sources:",
            *(f"• {safe_name(s, limit=150)}" for s in info.sources),
        ]
        embed = notice_embed(
            outgoing.fit_lines(lines, outgoing.DESCRIPTION_MAX, more=lambda n: f"… and {n} more sources"),
            title=safe_name(info.name),
        )
        await outgoing.respond(interaction, embed=embed)

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
    @app_commands.describe(character="The character to scrape (leave empty for every character)")
    @app_commands.autocomplete(character=character_autocomplete)
    @moderator_only()
    async def rescrape(
        self, interaction: discord.Interaction, character: app_commands.Range[str, 1, NAME_MAX] | None = None
    ) -> None:
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
        await outgoing.respond(
            interaction, f"Scrape of {what} queued as job `#{job_id}`. Follow it with /jobs."
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
        await outgoing.respond(
            interaction, f"Training queued as job `#{job_id}`; the new model is used once it is promoted."
        )

    @app_commands.command(name="jobs", description="Queued, running and finished jobs")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    @moderator_only()
    async def jobs(self, interaction: discord.Interaction) -> None:
        recent = await self.bot.in_thread(self.bot.jobs.recent, limit=JOB_LINES)
        lines = [describe_job(job) for job in recent]
        text = outgoing.fit_lines(lines, outgoing.DESCRIPTION_MAX, more=lambda n: f"… and {n} more jobs")
        await outgoing.respond(interaction, embed=notice_embed(text or "No jobs yet.", title="Jobs"))

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
        await outgoing.respond(
            interaction,
            embed=notice_embed(outgoing.fit_lines(lines, outgoing.DESCRIPTION_MAX), title="Model"),
        )

    @model.command(name="promote", description="Make a version active (even if it scores lower)")
    @app_commands.describe(version="The model version to make active (see /model info)")
    @app_commands.autocomplete(version=version_autocomplete)
    @moderator_only()
    async def model_promote(
        self, interaction: discord.Interaction, version: app_commands.Range[str, 1, VERSION_MAX]
    ) -> None:
        from models.errors import RegistryError

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await self.bot.in_thread(self.bot.registry.promote, version, force=True)
        except RegistryError as exc:
            raise UserFacingError(str(exc)) from exc
        if result.promoted:
            await self.bot.inference.check_model()
        await outgoing.respond(interaction, f"{safe_name(version)}: {safe_name(result.reason, limit=300)}")

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
        await outgoing.respond(interaction, f"Rolled back to {safe_name(target)}.")


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Moderation(bot))
    bot.add_dynamic_items(*MODERATION_ITEMS)


async def teardown(bot: NamaeBot) -> None:
    bot.remove_dynamic_items(*MODERATION_ITEMS)
