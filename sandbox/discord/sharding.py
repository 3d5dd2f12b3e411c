"""Sharding as Discord does it: which session gets a guild's events, what IDENTIFY may ask for,
and how fast sessions may start.

- A session's `shard: [id, count]` takes the guilds with `(guild_id >> 22) % count == id`; events
  without a guild (DMs) go to shard 0. A session that sent no `shard` is `[0, 1]`: everything.
- A shard that is not a pair of integers with `0 <= id < count` closes the socket with 4010
  (invalid shard); a shard that would hold more than 2,500 guilds closes it with 4011 (sharding
  required).
- IDENTIFYs are paced per concurrency bucket (`shard_id % max_concurrency`): one per 5 s in each.
  One sent sooner is answered with op 9 Invalid Session (`d: false`), as Discord documents for
  its identify limit (docs: Gateway, "Identifying" and "Rate Limiting"); discord.py then closes
  the socket itself (code 1000) and IDENTIFYs again after `before_identify_hook`.
- Each IDENTIFY spends one session start of the day's `total` (1,000); the one after the last
  ends every session and revokes the token, as Discord does.

`GET /gateway/bot` reports the recommended shard count (one per 1,000 guilds, as Discord
recommends) and the session start limit with its `max_concurrency`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

# Close codes.
INVALID_SHARD = 4010
SHARDING_REQUIRED = 4011
AUTHENTICATION_FAILED = 4004

SESSION_START_WINDOW_S = 24 * 3600.0


def shard_of(guild_id: int, count: int) -> int:
    """The shard that receives `guild_id`'s events when there are `count` shards."""
    return (guild_id >> 22) % count


@dataclass(frozen=True)
class ShardingRules:
    """Discord's numbers by default; tests shrink them (a fast pacing, a small guild limit)."""

    max_guilds_per_shard: int = 2500
    guilds_per_recommended_shard: int = 1000
    max_concurrency: int = 1
    identify_interval_s: float = 5.0
    session_start_total: int = 1000

    def __post_init__(self) -> None:
        if self.max_concurrency < 1 or self.max_guilds_per_shard < 1 or self.guilds_per_recommended_shard < 1:
            raise ValueError(
                "max_concurrency, max_guilds_per_shard and guilds_per_recommended_shard must be >= 1"
            )
        if self.identify_interval_s < 0:
            raise ValueError("identify_interval_s cannot be negative")

    def recommended_shards(self, guild_count: int) -> int:
        return max(1, math.ceil(guild_count / self.guilds_per_recommended_shard))

    def bucket(self, shard_id: int) -> int:
        return shard_id % self.max_concurrency


class InvalidShard(ValueError):
    """IDENTIFY's `shard` is not `[id, count]` with 0 <= id < count."""


@dataclass(frozen=True)
class Shard:
    id: int
    count: int

    @classmethod
    def parse(cls, value: Any) -> Shard:
        if value is None:
            return cls(0, 1)
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidShard(f"shard must be [shard_id, num_shards], got {value!r}")
        shard_id, count = value
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise InvalidShard(f"shard values must be integers, got {value!r}")
        if count < 1 or not 0 <= shard_id < count:
            raise InvalidShard(f"shard {shard_id} is not in 0..{count - 1}")
        return cls(shard_id, count)

    def receives(self, guild_id: int | None) -> bool:
        """Whether this shard gets an event of `guild_id` (None: an event without a guild)."""
        if guild_id is None:
            return self.id == 0
        return shard_of(guild_id, self.count) == self.id

    def as_list(self) -> list[int]:
        return [self.id, self.count]


@dataclass(frozen=True)
class IdentifyRecord:
    """One IDENTIFY the gateway judged: when it arrived, for which shard, and what came of it."""

    at: float  # time.monotonic() on arrival
    shard: list[int] | None  # as sent
    bucket: int | None
    outcome: str  # "ready", "paced" (op 9), "invalid_shard", "sharding_required", "limit_spent"
    guilds: int = 0  # guilds the session was given


@dataclass
class IdentifyGate:
    """The per-bucket pacing and the day's session starts, shared by every connection."""

    rules: ShardingRules
    last_ready: dict[int, float] = field(default_factory=dict)  # bucket -> monotonic time
    remaining: int = 0
    window_started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.remaining = self.rules.session_start_total

    def session_start_limit(self) -> dict[str, int]:
        self._roll_window()
        elapsed = time.monotonic() - self.window_started
        return {
            "total": self.rules.session_start_total,
            "remaining": self.remaining,
            "reset_after": max(0, int((SESSION_START_WINDOW_S - elapsed) * 1000)),
            "max_concurrency": self.rules.max_concurrency,
        }

    def too_soon(self, bucket: int, now: float) -> bool:
        last = self.last_ready.get(bucket)
        return last is not None and now - last < self.rules.identify_interval_s

    def spend(self, bucket: int, now: float) -> bool:
        """Count a session start in `bucket`; False when the day's starts are spent."""
        self._roll_window()
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        self.last_ready[bucket] = now
        return True

    def _roll_window(self) -> None:
        if time.monotonic() - self.window_started >= SESSION_START_WINDOW_S:
            self.window_started = time.monotonic()
            self.remaining = self.rules.session_start_total
