"""FakeDiscord's gateway controls for tests: dropping connections, invalidating sessions, asking
for a reconnect, forcing rate limits, and reading heartbeats, IDENTIFYs, RESUMEs and shards."""

from __future__ import annotations

import itertools
from typing import Any

from sandbox.discord.gateway import GatewaySession
from sandbox.discord.records import ForcedRateLimit, HeartbeatRecord, ResumeRecord
from sandbox.discord.sharding import IdentifyRecord


class GatewayControls:
    """Mixed into FakeDiscord: its gateway and rate-limit knobs and what they recorded."""

    async def drop_connection(self, code: int = 4000) -> int:
        """Close the bot's gateway socket(s) abruptly; the session stays resumable."""
        return await self.gateway.drop_connections(code)

    async def invalidate_session(self, resumable: bool) -> int:
        """Send INVALID_SESSION; with resumable=False the session is forgotten (re-IDENTIFY)."""
        return self.gateway.invalidate_sessions(resumable=resumable)

    def forget_closed_sessions(self) -> int:
        """Drop every session without a socket, as Discord expires sessions nobody resumes; their
        events stop being rendered. Returns how many were dropped."""
        closed = [sid for sid, s in self.gateway.sessions.items() if s.connection is None]
        for sid in closed:
            del self.gateway.sessions[sid]
        return len(closed)

    async def request_reconnect(self) -> int:
        """Send op 7 RECONNECT: the client should close and RESUME."""
        return self.gateway.request_reconnect()

    @property
    def heartbeat_interval_ms(self) -> int:
        """The interval sent in HELLO; a change applies to the next connection."""
        return self.gateway.heartbeat_interval_ms

    @heartbeat_interval_ms.setter
    def heartbeat_interval_ms(self, value: int) -> None:
        self.gateway.heartbeat_interval_ms = value

    @property
    def heartbeats(self) -> list[HeartbeatRecord]:
        return self.gateway.heartbeats

    @property
    def resumes(self) -> list[ResumeRecord]:
        return self.gateway.resumes

    @property
    def identify_count(self) -> int:
        return len(self.gateway.identifies)

    @property
    def resume_count(self) -> int:
        return len(self.gateway.resumes)

    @property
    def identifies(self) -> list[dict[str, Any]]:
        """IDENTIFY payloads received (token removed): intents, properties, shard."""
        return self.gateway.identifies

    @property
    def identify_log(self) -> list[IdentifyRecord]:
        """Every IDENTIFY judged, accepted or not, in arrival order."""
        return self.gateway.identify_log

    def paced_identifies(self) -> list[IdentifyRecord]:
        """IDENTIFYs sent sooner than their concurrency bucket allowed (answered with op 9)."""
        return [r for r in self.gateway.identify_log if r.outcome == "paced"]

    def live_shards(self) -> list[tuple[int, int]]:
        """(shard id, shard count) of every session with an open socket, sorted."""
        return sorted((s.shard.id, s.shard.count) for s in self.gateway.live_sessions())

    def shard_sessions(self, guild_id: int | None) -> list[GatewaySession]:
        """The sessions that receive `guild_id`'s events (shard 0's for None), live or not."""
        return [s for s in self.gateway.sessions.values() if s.shard.receives(guild_id)]

    def heartbeat_intervals(self, connection: int | None = None) -> list[float]:
        """Seconds between consecutive heartbeats on one connection (default: the latest)."""
        beats = self.gateway.heartbeats
        if not beats:
            return []
        wanted = beats[-1].connection if connection is None else connection
        times = [b.at for b in beats if b.connection == wanted]
        return [b - a for a, b in itertools.pairwise(times)]

    def force_rate_limit(
        self,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: float = 0.5,
        times: int = 1,
        is_global: bool = False,
    ) -> None:
        """Answer the next `times` matching REST requests with 429 and this retry_after."""
        self.forced_rate_limits.append(ForcedRateLimit(method, path_contains, retry_after, times, is_global))
