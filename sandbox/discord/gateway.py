"""The gateway: HELLO, IDENTIFY/READY, heartbeats, sequenced dispatches, RESUME with replay.

Frames are plain JSON text (discord.py only inflates binary frames). Every session keeps a
backlog of its dispatches so a RESUME replays exactly what the client missed, then RESUMED.
Each session is one shard and gets only its guilds' events (sandbox/discord/sharding.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sandbox.discord.records import HeartbeatRecord, ResumeRecord
from sandbox.discord.sharding import (
    AUTHENTICATION_FAILED,
    INVALID_SHARD,
    SHARDING_REQUIRED,
    IdentifyGate,
    IdentifyRecord,
    InvalidShard,
    Shard,
    ShardingRules,
)

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord

log = logging.getLogger(__name__)

# Opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT = 0, 1, 2, 3, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11

# Intents.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15

BACKLOG = 10_000
_connection_ids = itertools.count(1)

Render = Callable[["GatewaySession"], dict[str, Any] | None]


@dataclass
class Connection:
    ws: web.WebSocketResponse
    path: str
    id: int = field(default_factory=lambda: next(_connection_ids))
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    session: GatewaySession | None = None
    writer: asyncio.Task[None] | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(frame, separators=(",", ":")))

    async def write_forever(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


@dataclass
class GatewaySession:
    id: str
    token: str
    intents: int
    sequence: int = 0
    backlog: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=BACKLOG))
    shard: Shard = field(default_factory=lambda: Shard(0, 1))
    connection: Connection | None = None
    guilds_sent: bool = False

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.sequence += 1
        frame = {"op": DISPATCH, "t": event, "s": self.sequence, "d": data}
        self.backlog.append(frame)
        if self.connection is not None:
            self.connection.send(frame)


class Gateway:
    def __init__(self, fake: FakeDiscord, *, heartbeat_interval_ms: int, rules: ShardingRules) -> None:
        self._fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.rules = rules
        self.identify_gate = IdentifyGate(rules)
        self.identify_log: list[IdentifyRecord] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: dict[int, Connection] = {}
        self.heartbeats: list[HeartbeatRecord] = []
        self.resumes: list[ResumeRecord] = []
        self.identifies: list[dict[str, Any]] = []
        self.close_codes_sent: list[int] = []
        self.presences: list[dict[str, Any]] = []

    # ---- dispatching --------------------------------------------------------------------

    def dispatch(self, event: str, render: Render, guild_id: int | None) -> None:
        """Send `event` to every session of the shard that holds `guild_id` (shard 0 when None);
        `render` shapes it per session (None: not for it)."""
        for session in list(self.sessions.values()):
            if not session.guilds_sent or not session.shard.receives(guild_id):
                continue
            data = render(session)
            if data is not None:
                session.dispatch(event, data)

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.connection is not None]

    # ---- harness controls ---------------------------------------------------------------

    async def drop_connections(self, code: int) -> int:
        """Close every live socket; sessions stay resumable. Returns how many were dropped."""
        dropped = 0
        for connection in list(self.connections.values()):
            await self._close(connection, code)
            dropped += 1
        return dropped

    def invalidate_sessions(self, *, resumable: bool) -> int:
        count = 0
        for session in list(self.sessions.values()):
            if session.connection is None:
                continue
            session.connection.send({"op": INVALID_SESSION, "d": resumable})
            if not resumable:
                del self.sessions[session.id]
            count += 1
        return count

    def request_reconnect(self) -> int:
        count = 0
        for session in self.live_sessions():
            assert session.connection is not None
            session.connection.send({"op": RECONNECT, "d": None})
            count += 1
        return count

    async def close_all(self) -> None:
        for connection in list(self.connections.values()):
            await self._close(connection, 1001)

    async def _close(self, connection: Connection, code: int) -> None:
        self.close_codes_sent.append(code)
        self._detach(connection)
        connection.queue.put_nowait(None)
        await connection.ws.close(code=code)

    def _detach(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None
            self._fake._changes.notify()  # whoever waits for a shard to go away

    # ---- the socket ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        connection = Connection(ws, request.path)
        self.connections[connection.id] = connection
        connection.writer = asyncio.create_task(connection.write_forever())
        connection.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    if message.type is WSMsgType.BINARY:
                        await self._close(connection, 4002)  # decode error: we only speak JSON text
                    continue
                try:
                    frame = json.loads(message.data)
                    op = frame["op"]
                except (ValueError, KeyError, TypeError):
                    await self._close(connection, 4002)
                    break
                await self._on_frame(connection, op, frame.get("d"))
        finally:
            self._detach(connection)
            connection.queue.put_nowait(None)
            if connection.writer is not None:
                await asyncio.gather(connection.writer, return_exceptions=True)
        return ws

    async def _on_frame(self, connection: Connection, op: int, data: Any) -> None:
        if op == HEARTBEAT:
            session = connection.session
            self.heartbeats.append(
                HeartbeatRecord(
                    session_id=session.id if session else None,
                    connection=connection.id,
                    at=time.monotonic(),
                    sequence=data,
                )
            )
            connection.send({"op": HEARTBEAT_ACK})
            self._fake._changes.notify()
        elif op == IDENTIFY:
            await self._identify(connection, data or {})
        elif op == RESUME:
            await self._resume(connection, data or {})
        elif op == REQUEST_MEMBERS:
            self._request_members(connection, data or {})
        elif op == PRESENCE:
            self.presences.append(data)
        else:
            await self._close(connection, 4001)  # unknown opcode

    async def _identify(self, connection: Connection, data: dict[str, Any]) -> None:
        if connection.session is not None:
            await self._close(connection, 4005)  # already authenticated
            return
        token = data.get("token")
        if not isinstance(token, str) or not self._fake._token_accepted(token):
            await self._close(connection, AUTHENTICATION_FAILED)
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await self._close(connection, 4013)  # invalid intents
            return
        if (intents & MESSAGE_CONTENT and not self._fake.message_content_intent_allowed) or (
            intents & GUILD_MEMBERS and not self._fake.members_intent_allowed
        ):
            await self._close(connection, 4014)  # disallowed intents
            return
        now = time.monotonic()
        sent_shard = data.get("shard")
        try:
            shard = Shard.parse(sent_shard)
        except InvalidShard:
            self.identify_log.append(IdentifyRecord(now, sent_shard, None, "invalid_shard"))
            await self._close(connection, INVALID_SHARD)
            return
        bucket = self.rules.bucket(shard.id)
        guilds = self._fake._guilds_of_shard(shard)
        if len(guilds) > self.rules.max_guilds_per_shard:
            self.identify_log.append(
                IdentifyRecord(now, sent_shard, bucket, "sharding_required", len(guilds))
            )
            await self._close(connection, SHARDING_REQUIRED)
            return
        if self.identify_gate.too_soon(bucket, now):
            self.identify_log.append(IdentifyRecord(now, sent_shard, bucket, "paced"))
            connection.send({"op": INVALID_SESSION, "d": False})
            self._fake._changes.notify()
            return
        if not self.identify_gate.spend(bucket, now):
            # Discord ends every session and resets the token when the day's starts are spent.
            self.identify_log.append(IdentifyRecord(now, sent_shard, bucket, "limit_spent"))
            self._fake._revoke_token(token)
            self.sessions.clear()
            for other in list(self.connections.values()):
                if other is not connection:
                    # Not awaited: a close waits for the peer's answer, which comes when it reads.
                    closing = asyncio.create_task(self._close(other, AUTHENTICATION_FAILED))
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)
            await self._close(connection, AUTHENTICATION_FAILED)
            return
        self.identify_log.append(IdentifyRecord(now, sent_shard, bucket, "ready", len(guilds)))
        self._fake._record_token(token)
        redacted = {k: v for k, v in data.items() if k != "token"}
        self.identifies.append(redacted)
        session = GatewaySession(id=secrets.token_hex(16), token=token, intents=intents, shard=shard)
        self.sessions[session.id] = session
        session.connection = connection
        connection.session = session
        ready = self._fake._ready_payload(session, guilds, shard=sent_shard)
        session.dispatch("READY", ready)
        if session.has(GUILDS):
            for guild in guilds:
                session.dispatch(
                    "GUILD_CREATE",
                    guild.payload(
                        include_all_members=session.has(GUILD_MEMBERS),
                        bot_user_id=self._fake.bot_user_id,
                    ),
                )
        session.guilds_sent = True
        self._fake._changes.notify()

    async def _resume(self, connection: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != session.token:
            connection.send({"op": INVALID_SESSION, "d": False})
            return
        if session.connection is not None and session.connection is not connection:
            old = session.connection
            self._detach(old)
            old.queue.put_nowait(None)
            await old.ws.close(code=4000)
        seq = data.get("seq")
        missed = [f for f in session.backlog if seq is None or f["s"] > seq]
        session.connection = connection
        connection.session = session
        for frame in missed:
            connection.send(frame)
        session.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        self.resumes.append(ResumeRecord(session.id, seq, len(missed), connection.path))
        self._fake._changes.notify()

    def _request_members(self, connection: Connection, data: dict[str, Any]) -> None:
        session = connection.session
        if session is None:
            return
        guild = self._fake.world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or not session.shard.receives(guild.id):
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        limit = int(data.get("limit") or 0)
        members = [
            m
            for m in guild.members.values()
            if (not wanted or m.user.id in wanted) and m.user.name.lower().startswith(query)
        ]
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted if u not in guild.members],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
