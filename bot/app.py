"""The bot: one `commands.AutoShardedBot` with a cog per feature (RoboDanny's layout), the shared
services the cogs use (catalog, answer service, label names), typed access to cogs, a global
app-command error handler and a model watcher task. Sharding (which shards, IDENTIFY pacing across
processes) is bot/sharding.py's.

Commands are usable in servers only, installed to servers only, unless a command says otherwise
(`/classify`, `/privacy` and `/forget` also work in a DM with the bot)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import discord
from discord import app_commands
from discord.ext import commands
from sqlalchemy import Engine

from bot import outgoing
from bot.answered import AnsweredLog
from bot.inference import InferenceService, NoModel
from bot.names import LabelNames
from bot.outgoing import NO_MENTIONS
from bot.sharding import IdentifyPacer, check_session_starts, runs_shard_zero, shard_options
from catalog.errors import CatalogError
from catalog.guilds import GuildSettingsStore
from catalog.identify import IdentifySlots
from catalog.jobs import JobQueue
from catalog.settings import Settings
from catalog.store import ImageStore
from media.decode import ImageRejected

log = logging.getLogger(__name__)
T = TypeVar("T")
C = TypeVar("C")

EXTENSIONS = (
    "bot.cogs.classify",
    "bot.cogs.corrections",
    "bot.cogs.moderation",
    "bot.cogs.settings",
    "bot.cogs.privacy",
)
GENERIC_FAILURE = "Something went wrong on my side. It has been logged; please try again later."


class UserFacingError(Exception):
    """An error whose message is written for the member who caused it."""


def intents() -> discord.Intents:
    # message_content is privileged: without it guild messages arrive without attachments.
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


class NamaeBot(commands.AutoShardedBot):
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        registry: Any,
        *,
        detector: Any = None,
        classifier: Any = None,
        sync_commands: bool = True,
        fetch_exempt_networks: tuple[str, ...] = (),
        **client_options: Any,
    ) -> None:
        """`fetch_exempt_networks` opens holes in the fetcher's address policy (only the sandbox
        needs one: its media proxy lives on 127.0.0.1); `client_options` go to discord.Client.
        The shards it runs come from `settings.discord` (bot/sharding.py)."""
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=False, private_channel=False
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
            **shard_options(settings.discord),
            **client_options,
        )
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.store = ImageStore.from_settings(settings)
        self.guild_settings = GuildSettingsStore(engine, default_threshold=settings.discord.default_threshold)
        self.jobs = JobQueue(engine)
        self.inference = InferenceService(
            settings, registry, detector=detector, classifier=classifier, engine=engine
        )
        self.names = LabelNames(engine, self.in_thread)
        self.answered = AnsweredLog()  # posted message -> our reply (tests and the demo wait on it)
        self.sync_commands = sync_commands
        self.fetch_exempt_networks = fetch_exempt_networks
        # Catalog calls block (SQLite fsyncs, PostgreSQL round trips): they run here, off the loop.
        self._db_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="namae-db")
        self._background: set[asyncio.Task[Any]] = set()
        self.identify_pacer = IdentifyPacer(
            IdentifySlots(engine, settings.discord.identify_interval_s),
            settings.discord.identify_interval_s,
            self.in_thread,
        )
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        await self.inference.start()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.spawn(self.inference.watch(self.settings.discord.model_poll_s), name="namae-model-watcher")
        limits = await self.fetch_session_start_limits()
        check_session_starts(limits)
        self.identify_pacer.max_concurrency = limits.max_concurrency
        # Commands are the application's, not a shard's: one process (shard 0's) syncs them.
        if self.sync_commands and runs_shard_zero(self.settings.discord):
            synced = await self.tree.sync()
            log.info("synced %d application commands", len(synced))
        # Everything loaded so far (libraries, the model, cogs) lives for the whole process. A full
        # collection that re-scans it stalls the event loop for hundreds of milliseconds (measured:
        # 360 ms with onnxruntime and torch-sized heaps), long enough to delay heartbeats; frozen
        # objects are left out of later collections.
        gc.collect()
        gc.freeze()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_pacer.before_identify(shard_id, initial=initial)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await super().close()
        self.inference.close()
        self._db_pool.shutdown(wait=True)

    def spawn(self, coro: Any, *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def in_thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: func(*args, **kwargs))

    def cog_of_type(self, kind: type[C]) -> C:
        """The loaded cog that is a `kind`, typed as such: how views reach a cog without naming it
        in a string. `kind` is a base class from a module that is no extension (`bot.views`):
        loading an extension executes its module afresh, so its own classes are new objects."""
        for cog in self.cogs.values():
            if isinstance(cog, kind):
                return cast(C, cog)
        raise LookupError(f"no loaded cog is a {kind.__name__}")

    # -- errors ---------------------------------------------------------------------------------

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await self.report_error(interaction, error)

    async def report_error(self, interaction: discord.Interaction, error: BaseException) -> None:
        """Tell the member what went wrong in plain words; log everything else."""
        text = describe_error(error)
        if text is None:
            log.error(
                "interaction %s (%s) failed",
                interaction.id,
                interaction.command.qualified_name if interaction.command else interaction.data,
                exc_info=error,
            )
            text = GENERIC_FAILURE
        else:
            log.info("interaction %s refused: %s", interaction.id, text)
        try:
            await outgoing.respond(interaction, text)
        except discord.HTTPException:
            log.warning("could not tell the member about the error of interaction %s", interaction.id)


def describe_error(error: BaseException) -> str | None:
    """The sentence for a member, or None for failures that are ours (logged, generic answer)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You are not allowed to do that here."
    if isinstance(error, CatalogError | UserFacingError | NoModel):
        return _sentence(str(error))
    if isinstance(error, ImageRejected):
        return _sentence(error.detail)
    if isinstance(error, app_commands.TransformerError):
        return f"I could not understand {error.value!r} as {error.type.name.lower()}."
    return None


def _sentence(text: str) -> str:
    text = text.strip() or "That did not work."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
