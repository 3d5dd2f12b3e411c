"""Per-guild settings with defaults, in the manner of Red's `Config`: a guild that never changed
anything reads the defaults; a change writes only that guild's row.

Classification is off everywhere until a moderator names the channels where it runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from cachetools import LRUCache
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from catalog.db import is_sqlite, session_scope
from catalog.errors import CatalogError
from catalog.schema import GuildSettings, utcnow

MAX_CHANNELS = 50
CACHED_GUILDS = 10_000


@dataclass(frozen=True)
class GuildConfig:
    """What the bot needs to know about one guild, defaults already applied."""

    guild_id: int
    channel_ids: tuple[int, ...] = ()
    threshold: float | None = None  # None: the model card's own thresholds
    mod_role_id: int | None = None
    auto_classify: bool = True

    def classifies_in(self, channel_id: int | None) -> bool:
        return self.auto_classify and channel_id is not None and channel_id in self.channel_ids


class GuildSettingsStore:
    """Reads are served from memory after the first; every write goes to the catalog first and
    then replaces the cached value, so one bot process always sees its own changes. The memory
    holds the `cache_size` most recently used guilds (a bot in more guilds reads the others again)."""

    def __init__(
        self, engine: Engine, *, default_threshold: float | None = None, cache_size: int = CACHED_GUILDS
    ) -> None:
        if default_threshold is not None and not 0.0 <= default_threshold <= 1.0:
            raise CatalogError(f"default threshold {default_threshold} is not between 0 and 1")
        self.engine = engine
        self.default_threshold = default_threshold
        self._cache: LRUCache[int, GuildConfig] = LRUCache(maxsize=max(1, cache_size))
        self._lock = threading.Lock()

    def defaults(self, guild_id: int) -> GuildConfig:
        return GuildConfig(guild_id=guild_id, threshold=self.default_threshold)

    def get(self, guild_id: int) -> GuildConfig:
        with self._lock:
            cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        with session_scope(self.engine) as session:
            row = session.get(GuildSettings, guild_id)
            config = self._from_row(guild_id, row)
        with self._lock:
            self._cache[guild_id] = config
        return config

    def forget_cached(self, guild_id: int | None = None) -> None:
        """Drop cached values (all, or one guild's) so the next read comes from the catalog."""
        with self._lock:
            if guild_id is None:
                self._cache.clear()
            else:
                self._cache.pop(guild_id, None)

    def set_channels(self, guild_id: int, channel_ids: list[int]) -> GuildConfig:
        unique = list(dict.fromkeys(int(c) for c in channel_ids))
        if len(unique) > MAX_CHANNELS:
            raise CatalogError(f"at most {MAX_CHANNELS} channels can be enabled")
        return self._write(guild_id, channel_ids=unique)

    def enable_channel(self, guild_id: int, channel_id: int) -> GuildConfig:
        current = self.get(guild_id)
        return self.set_channels(guild_id, [*current.channel_ids, channel_id])

    def disable_channel(self, guild_id: int, channel_id: int) -> GuildConfig:
        current = self.get(guild_id)
        return self.set_channels(guild_id, [c for c in current.channel_ids if c != channel_id])

    def set_threshold(self, guild_id: int, threshold: float | None) -> GuildConfig:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise CatalogError(f"the threshold must be between 0 and 1, not {threshold:g}")
        return self._write(guild_id, threshold=threshold)

    def set_mod_role(self, guild_id: int, role_id: int | None) -> GuildConfig:
        return self._write(guild_id, mod_role_id=role_id)

    def set_auto_classify(self, guild_id: int, enabled: bool) -> GuildConfig:
        return self._write(guild_id, auto_classify=bool(enabled))

    def reset(self, guild_id: int) -> GuildConfig:
        with session_scope(self.engine) as session:
            row = session.get(GuildSettings, guild_id)
            if row is not None:
                session.delete(row)
        config = self.defaults(guild_id)
        with self._lock:
            self._cache[guild_id] = config
        return config

    def _write(self, guild_id: int, **values: Any) -> GuildConfig:
        # An upsert, so two moderators changing different settings at once both win.
        insert = sqlite_insert if is_sqlite(self.engine) else pg_insert
        now = utcnow()
        fresh = {"channel_ids": [], "threshold": None, "mod_role_id": None, "auto_classify": True}
        statement = insert(GuildSettings).values(guild_id=guild_id, updated_at=now, **{**fresh, **values})
        statement = statement.on_conflict_do_update(
            index_elements=[GuildSettings.guild_id], set_={**values, "updated_at": now}
        )
        with session_scope(self.engine) as session:
            session.execute(statement)
            row = session.get(GuildSettings, guild_id, populate_existing=True)
            config = self._from_row(guild_id, row)
        with self._lock:
            self._cache[guild_id] = config
        return config

    def _from_row(self, guild_id: int, row: GuildSettings | None) -> GuildConfig:
        base = self.defaults(guild_id)
        if row is None:
            return base
        return replace(
            base,
            channel_ids=tuple(int(c) for c in (row.channel_ids or [])),
            threshold=row.threshold if row.threshold is not None else self.default_threshold,
            mod_role_id=row.mod_role_id,
            auto_classify=bool(row.auto_classify),
        )
