"""Which shards this process runs, and when each may IDENTIFY.

The bot is discord.py's `AutoShardedBot`. With no shard settings it asks Discord for the count
(GET /gateway/bot) and runs every shard; with `shard_count` and `shard_ids` it runs those, so N
shards spread over several processes or machines, each with the same catalog.

Everything a guild owns arrives on the guild's one shard (`(guild_id >> 22) % count`): its
messages, button clicks and commands, so its votes, quorum, review queue, settings cache and
cooldowns (per guild, and per member within a guild) are decided in one process; DMs all go to
shard 0. The catalog holds the rest. What several processes do share is Discord's IDENTIFY
pacing, through `catalog.identify`. Application commands are global: the process that runs shard
0 syncs them, the others leave them alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from catalog.errors import CatalogError
from catalog.identify import IdentifySlots
from catalog.settings import Settings
from catalog.settings_sections import BotSettings
from catalog.settings_types import parse_shard_ids

if TYPE_CHECKING:
    import discord

log = logging.getLogger(__name__)


def shard_options(settings: BotSettings) -> dict[str, Any]:
    """The AutoShardedClient keywords for these settings (none: Discord's recommended count)."""
    options: dict[str, Any] = {}
    if settings.shard_count is not None:
        options["shard_count"] = settings.shard_count
    if settings.shard_ids is not None:
        options["shard_ids"] = list(settings.shard_ids)
    return options


def runs_shard_zero(settings: BotSettings) -> bool:
    return settings.shard_ids is None or 0 in settings.shard_ids


def describe_shards(settings: BotSettings) -> str:
    if settings.shard_count is None:
        return "every shard, as many as Discord recommends"
    ids = settings.shard_ids if settings.shard_ids is not None else range(settings.shard_count)
    return f"shards {', '.join(map(str, ids))} of {settings.shard_count}"


def with_shards(settings: Settings, shard_count: int | None, shard_ids: str | None) -> Settings:
    """`settings` with the command line's --shard-count / --shard-ids applied and checked."""
    if shard_count is None and shard_ids is None:
        return settings
    update: dict[str, Any] = {}
    try:
        if shard_count is not None:
            update["shard_count"] = shard_count
        if shard_ids is not None:
            update["shard_ids"] = parse_shard_ids(shard_ids)
        discord_settings = BotSettings.model_validate(settings.discord.model_dump() | update)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CatalogError(
            f"--shard-count/--shard-ids: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    except ValueError as exc:
        raise CatalogError(f"--shard-ids: {exc}") from None
    return settings.model_copy(update={"discord": discord_settings})


def check_session_starts(limits: discord.SessionStartLimits) -> None:
    """Refuse to start when Discord has no session starts left: one more IDENTIFY would end every
    session of the bot and reset its token."""
    if limits.remaining < 1:
        hours = limits.reset_after / 3_600_000
        raise CatalogError(
            f"Discord allows this bot no more gateway sessions until its daily limit of {limits.total} "
            f"resets in {hours:.1f} h; starting now would get the token reset"
        )


class IdentifyPacer:
    """`before_identify_hook` for every shard of this process, paced with the bot's other processes
    through the catalog. If the catalog cannot be reached it falls back to discord.py's own pacing
    (5 s between this process's IDENTIFYs), which is right for a single process."""

    def __init__(
        self,
        slots: IdentifySlots,
        interval_s: float,
        in_thread: Callable[..., Awaitable[Any]],
    ) -> None:
        self.slots = slots
        self.interval_s = interval_s
        self.in_thread = in_thread  # the bot's pool for catalog calls
        self.max_concurrency = 1  # from GET /gateway/bot once the bot has logged in

    async def before_identify(self, shard_id: int | None, *, initial: bool) -> float:
        """Wait for this shard's IDENTIFY slot; returns the seconds waited."""
        bucket = (shard_id or 0) % self.max_concurrency
        try:
            slot = await self.in_thread(self.slots.reserve, bucket)
            wait = slot.wait_s
        except SQLAlchemyError as exc:
            log.warning("IDENTIFY slots unavailable in the catalog (%s); pacing this process alone", exc)
            wait = 0.0 if initial else self.interval_s
        if wait > 0:
            log.info("shard %s waits %.1f s for its IDENTIFY slot (bucket %d)", shard_id, wait, bucket)
            await asyncio.sleep(wait)
        return wait
