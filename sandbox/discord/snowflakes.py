"""Snowflake ids for the fake: real-looking, strictly increasing, with a spread for guild ids so
that shards receive them the way real guilds spread."""

from __future__ import annotations

import threading
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


class SnowflakeFactory:
    """Real-looking, strictly increasing snowflakes (timestamp in the top 42 bits)."""

    def __init__(self) -> None:
        self._last = 0
        self._spread_ms: int | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
            if candidate <= self._last:
                candidate = self._last + 1
            self._last = candidate
            return candidate

    def next_millisecond(self) -> int:
        """A snowflake in the millisecond after the previous one this method gave. Guild ids take
        these: a shard is chosen by the millisecond (`(id >> 22) % count`), so the guilds of a
        world spread over any number of shards evenly and the same way every run, as real guilds,
        made at different times, spread. Worker id 1 (bits 17-21) keeps them apart from the ids
        `__call__` gives in the same millisecond."""
        with self._lock:
            if self._spread_ms is None:
                self._spread_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
            else:
                self._spread_ms += 1
            return (self._spread_ms << 22) | (1 << 17)
