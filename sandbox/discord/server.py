"""FakeDiscord: REST and gateway on one loopback port, plus the harness tests drive it with.

A test builds a world (guilds, channels, roles, members), starts the fake, points discord.py at
it, and then acts as members (post, slash, click, choose, submit a modal, autocomplete) while
asserting on what the bot sent (`sent_messages`, interaction handles, `registered_commands`).
"""

from __future__ import annotations

import base64
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, TypeVar
from urllib.parse import quote

from aiohttp import web

from sandbox.discord import interactions as ix
from sandbox.discord.entities import FakeMember, FakeMessage, FakeRole, StoredFile, iso_now
from sandbox.discord.gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    Gateway,
    GatewaySession,
)
from sandbox.discord.guild import FakeGuild
from sandbox.discord.http_util import RateLimiter
from sandbox.discord.permissions import (
    ADD_REACTIONS,
    ATTACH_FILES,
    DEFAULT_BOT_PERMISSIONS,
    EMBED_LINKS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    USE_APPLICATION_COMMANDS,
    USE_EXTERNAL_EMOJIS,
    VIEW_CHANNEL,
)
from sandbox.discord.records import (
    Changes,
    ForcedRateLimit,
    HeartbeatRecord,
    InteractionHandle,
    RecordedEdit,
    RecordedMessage,
    RequestRecord,
    ResumeRecord,
)
from sandbox.discord.rest import RestApi
from sandbox.discord.sharding import IdentifyRecord, Shard, ShardingRules
from sandbox.discord.world import USER_MENTION, World, image_size

log = logging.getLogger(__name__)
T = TypeVar("T")

Attachment = tuple[str, bytes, str]  # filename, data, content type
# What an app may do in its bot's DM with a user (the interaction's app_permissions there).
DM_APP_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS
)  # fmt: skip


class FakeDiscord:
    """A fake Discord that unmodified discord.py connects to (see `bot.endpoints.point_discord_py_at`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        message_content_intent_allowed: bool = True,
        members_intent_allowed: bool = True,
        heartbeat_interval_ms: int = 41_250,
        interaction_deadline: float = 3.0,
        rate_limit: tuple[int, float] = (50, 1.0),
        global_rate_limit: int = 50,
        required_token: str | None = None,
        bot_name: str = "namae",
        sharding: ShardingRules | None = None,
    ) -> None:
        """`sharding` holds Discord's limits (2,500 guilds a shard, one IDENTIFY per 5 s per
        concurrency bucket...); tests pass faster or smaller ones."""
        self.host = host
        self.port = port
        self.message_content_intent_allowed = message_content_intent_allowed
        self.members_intent_allowed = members_intent_allowed
        self.interaction_deadline = interaction_deadline
        self.required_token = required_token
        self.world = World(self._on_world_change)
        bot = self.world.add_user(bot_name, bot=True)
        self.bot_user_id = bot.id
        # Applications made since 2016 share their id with their bot user.
        self.application_id = bot.id
        self.app_owner_id = self.world.add_user("app-owner").id
        self.token = f"{base64.b64encode(str(bot.id).encode()).decode()}.fake.{secrets.token_urlsafe(27)}"
        self.tokens_seen: set[str] = set()
        self.revoked_tokens: set[str] = set()
        self.gateway = Gateway(
            self, heartbeat_interval_ms=heartbeat_interval_ms, rules=sharding or ShardingRules()
        )
        self.rate_limiter = RateLimiter(*rate_limit)
        self.global_rate_limiter = RateLimiter(global_rate_limit, 1.0)  # requests a second, per bot
        self.forced_rate_limits: list[ForcedRateLimit] = []
        self.rate_limited: list[RequestRecord] = []
        self.requests: list[RequestRecord] = []
        self.unhandled_requests: list[RequestRecord] = []
        self.sent_messages: list[RecordedMessage] = []
        self.edits: list[RecordedEdit] = []
        self.deleted_message_ids: list[int] = []
        self.typing: list[tuple[int, float]] = []
        self.reactions: list[tuple[int, str, bool]] = []  # message id, emoji, added
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.interactions: list[InteractionHandle] = []
        self._recorded_by_id: dict[int, RecordedMessage] = {}
        self._replies_to: dict[int, list[RecordedMessage]] = {}
        self._handles_by_id: dict[int, InteractionHandle] = {}
        self._handles_by_token: dict[str, InteractionHandle] = {}
        self._building_guild = False
        self._changes = Changes()
        self._runner: web.AppRunner | None = None
        self._version = itertools.count(1)

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[RestApi.middleware_for(self)], client_max_size=64 * 1024 * 1024)
        RestApi(self).register(app)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/resume/", self.gateway.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("fake Discord listening on %s", self.base_url)

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    # ---- building the world -------------------------------------------------------------

    def add_guild(
        self, name: str, *, owner_id: int | None = None, bot_permissions: int = DEFAULT_BOT_PERMISSIONS
    ) -> FakeGuild:
        """A guild with the bot as a member (its managed role holds `bot_permissions`)."""
        self._building_guild = True
        try:
            guild_id = self.world.snowflake.next_millisecond()
            if owner_id is None:
                owner_id = self.world.add_user(f"{name} owner").id
            guild = FakeGuild(self.world, guild_id, name, owner_id)
            self.world.guilds[guild_id] = guild
            owner = self.world.user(owner_id)
            guild._attach_member(FakeMember(owner, guild_id, []))
            bot_role = FakeRole(
                self.world.snowflake(), self.world.user(self.bot_user_id).name, bot_permissions, 1
            )
            bot_role.managed_for_bot = self.bot_user_id
            guild.roles[bot_role.id] = bot_role
            guild._attach_member(FakeMember(self.world.user(self.bot_user_id), guild_id, [bot_role.id]))
            guild.bot_role_id = bot_role.id
        finally:
            self._building_guild = False

        def joined(session: GatewaySession) -> dict[str, Any] | None:
            if not session.has(GUILDS):
                return None
            data = guild.payload(include_all_members=session.has(GUILD_MEMBERS), bot_user_id=self.bot_user_id)
            # A guild joined mid-session has no `unavailable` key (discord.py: on_guild_join).
            del data["unavailable"]
            return data

        self.gateway.dispatch("GUILD_CREATE", joined, guild_id)
        return guild

    def guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.world.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def _on_world_change(self, event: str, data: dict[str, Any], guild_id: int | None) -> None:
        if self._building_guild:
            return
        needed = GUILD_MEMBERS if event.startswith("GUILD_MEMBER") else GUILDS
        self.gateway.dispatch(event, lambda s: data if s.has(needed) else None, guild_id)

    def serve_file(self, name: str, data: bytes, content_type: str) -> str:
        """Serve bytes at a loopback URL (embed images, thumbnails); returns the URL."""
        file_id = self.world.snowflake()
        self.world.files[str(file_id)] = StoredFile(name, data, content_type)
        return f"{self.base_url}/files/{file_id}/{quote(name)}"

    def _store_attachment(
        self, channel_id: int, file: StoredFile, *, description: str | None = None
    ) -> dict[str, Any]:
        attachment_id = self.world.snowflake()
        self.world.files[str(attachment_id)] = file
        path = f"attachments/{channel_id}/{attachment_id}/{quote(file.name)}"
        data: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": file.name,
            "size": len(file.data),
            "url": f"{self.base_url}/{path}",
            "proxy_url": f"{self.base_url}/media/{path}",
            "content_type": file.content_type,
        }
        if description:
            data["description"] = description
        size = image_size(file.data) if file.content_type.startswith("image/") else None
        if size is not None:
            data["width"], data["height"] = size
        return data

    # ---- acting as members --------------------------------------------------------------

    async def post_message(
        self,
        channel_id: int,
        author_id: int,
        content: str = "",
        *,
        attachments: Sequence[Attachment] = (),
        embeds: Sequence[dict[str, Any]] = (),
        reply_to: int | None = None,
    ) -> int:
        """A member posts in a channel; the bot gets MESSAGE_CREATE (subject to its intents)."""
        channel = self.world.channel(channel_id)
        guild = self.world.guild_of(channel_id)
        if guild is not None:
            guild.member(author_id)
        else:
            self.world.user(author_id)
        message = FakeMessage(
            id=self.world.snowflake(),
            channel_id=channel_id,
            guild_id=guild.id if guild else None,
            author_id=author_id,
            content=content,
            embeds=[dict(e) for e in embeds],
            attachments=[self._store_attachment(channel_id, StoredFile(*a)) for a in attachments],
        )
        if reply_to is not None:
            message.type = 19
            message.message_reference = {
                "type": 0,
                "message_id": str(reply_to),
                "channel_id": str(channel_id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
        self.world.messages[message.id] = message
        channel.last_message_id = message.id
        self._dispatch_message("MESSAGE_CREATE", message)
        return message.id

    async def post_dm(
        self, author_id: int, content: str = "", *, attachments: Sequence[Attachment] = ()
    ) -> int:
        """A user writes to the bot in a DM (content is never withheld in DMs)."""
        channel = self.world.dm_channel(author_id)
        return await self.post_message(channel.id, author_id, content, attachments=attachments)

    def forget_attachments(self, message_id: int) -> int:
        """Stop serving a member message's attachments (404 from now on), so that a long run of
        posts keeps the fake's memory flat; returns how many files were dropped."""
        message = self._message(message_id)
        dropped = 0
        for attachment in message.attachments:
            dropped += self.world.files.pop(attachment["id"], None) is not None
        return dropped

    async def edit_member_message(self, message_id: int, content: str) -> None:
        message = self._message(message_id)
        message.content = content
        message.edited_timestamp = iso_now()
        self._dispatch_message("MESSAGE_UPDATE", message)

    def delete_message(self, channel_id: int, message_id: int) -> None:
        """Delete any message; replies referencing it then fail with 'Unknown message' (50035)."""
        message = self._message(message_id)
        if message.channel_id != channel_id:
            raise KeyError(f"message {message_id} is not in channel {channel_id}")
        message.deleted = True
        data = {"id": str(message_id), "channel_id": str(channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self.gateway.dispatch(
            "MESSAGE_DELETE", lambda s: data if self._wants_message(s, message) else None, message.guild_id
        )
        recorded = self._recorded_by_id.get(message_id)
        if recorded is not None:
            recorded.deleted = True
        self._changes.notify()

    async def react(self, message_id: int, member_id: int, emoji: str) -> None:
        message = self._message(message_id)
        message.reactions.setdefault(emoji, set()).add(member_id)
        data: dict[str, Any] = {
            "user_id": str(member_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
            "message_author_id": str(message.author_id),
        }
        if message.guild_id is not None:
            guild = self.guild(message.guild_id)
            data["guild_id"] = str(guild.id)
            data["member"] = guild.member(member_id).payload()
        self.gateway.dispatch(
            "MESSAGE_REACTION_ADD", lambda s: data if s.has(1 << 10) else None, message.guild_id
        )

    async def slash(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, Attachment] | None = None,
    ) -> InteractionHandle:
        """Invoke a synced slash command; `command` may be a path ("character add")."""
        merged = dict(options or {}) | dict(attachments or {})
        data = ix.chat_input_data(self, guild_id, channel_id, command, merged, focused=None)
        return self._send_interaction(2, guild_id, channel_id, member_id, data)

    async def slash_dm(
        self,
        user_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, Attachment] | None = None,
    ) -> InteractionHandle:
        """Invoke a synced slash command in the user's DM with the bot (refused, as the client
        would, when the command's contexts leave DMs out)."""
        channel = self.world.dm_channel(user_id)
        merged = dict(options or {}) | dict(attachments or {})
        data = ix.chat_input_data(self, None, channel.id, command, merged, focused=None)
        return self._send_interaction(2, None, channel.id, user_id, data)

    async def autocomplete(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        command: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        timeout: float = 3.0,
    ) -> list[dict[str, Any]]:
        """Type into an autocomplete option; returns the choices the bot offered."""
        data = ix.chat_input_data(self, guild_id, channel_id, command, dict(options), focused=focused)
        handle = self._send_interaction(4, guild_id, channel_id, member_id, data)
        callback = await handle.response(timeout)
        if callback.type != 8 or callback.data is None:
            raise AssertionError(f"autocomplete answered with callback type {callback.type}, not 8")
        return list(callback.data.get("choices", []))

    async def context_menu(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        name: str,
        target_message_id: int | None = None,
        *,
        target_user_id: int | None = None,
    ) -> InteractionHandle:
        """Use a message (or, with target_user_id, a user) context-menu command."""
        data = ix.context_menu_data(self, guild_id, channel_id, name, target_message_id, target_user_id)
        return self._send_interaction(2, guild_id, channel_id, member_id, data)

    async def click(self, message_id: int, custom_id: str, member_id: int) -> InteractionHandle:
        """Click a button on a message the bot sent."""
        message, component = ix.find_component(self, message_id, custom_id, kinds=(2,))
        data = {"custom_id": custom_id, "component_type": 2}
        if "id" in component:
            data["id"] = component["id"]
        return self._component_interaction(message, member_id, data)

    async def choose(
        self, message_id: int, custom_id: str, values: Sequence[str | int], member_id: int
    ) -> InteractionHandle:
        """Pick values in a select menu (string, user, role, mentionable or channel select)."""
        message, component = ix.find_component(self, message_id, custom_id, kinds=(3, 5, 6, 7, 8))
        data = ix.select_data(self, message, component, [str(v) for v in values])
        return self._component_interaction(message, member_id, data)

    async def submit_modal(
        self, custom_id: str, fields: Mapping[str, str], member_id: int
    ) -> InteractionHandle:
        """Submit the modal the bot opened most recently with this custom_id (fields by input custom_id)."""
        opener, modal = ix.find_modal(self, custom_id)
        data = ix.modal_submit_data(modal, dict(fields))
        guild_id = int(opener.payload["guild_id"])
        channel_id = int(opener.payload["channel_id"])
        message = None
        if opener.type == 3 and "message" in opener.payload:
            message = self.world.messages[int(opener.payload["message"]["id"])]
        return self._send_interaction(5, guild_id, channel_id, member_id, data, message=message)

    def _component_interaction(
        self, message: FakeMessage, member_id: int, data: dict[str, Any]
    ) -> InteractionHandle:
        if message.guild_id is None:
            raise ValueError("component interactions in DMs are not supported by the fake")
        return self._send_interaction(
            3, message.guild_id, message.channel_id, member_id, data, message=message
        )

    def _send_interaction(
        self,
        type: int,
        guild_id: int | None,
        channel_id: int,
        member_id: int,
        data: dict[str, Any],
        *,
        message: FakeMessage | None = None,
    ) -> InteractionHandle:
        """`guild_id` None: an interaction in the user's DM with the bot (context 1): a `user`
        instead of a `member`, and "0" as the guild-install owner, as Discord sends it."""
        interaction_id = self.world.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "channel_id": str(channel_id),
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is None:
            payload |= {
                "channel": self.world.channel(channel_id).payload(self.world),
                "user": self.world.user(member_id).payload(),
                "app_permissions": str(DM_APP_PERMISSIONS),
                "authorizing_integration_owners": {"0": "0"},
                "context": 1,
            }
        else:
            guild = self.guild(guild_id)
            channel = guild.channel(channel_id)
            member = guild.member(member_id)
            payload |= {
                "guild_id": str(guild_id),
                "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                "channel": channel.payload()
                | {"permissions": str(guild.member_permissions(member_id, channel_id))},
                "member": member.payload(permissions=guild.member_permissions(member_id, channel_id)),
                "app_permissions": str(guild.member_permissions(self.bot_user_id, channel_id)),
                "guild_locale": "en-US",
                "authorizing_integration_owners": {"0": str(guild_id)},
                "context": 0,
            }
        if message is not None:
            payload["message"] = self.world.message_payload(message)
        handle = InteractionHandle(
            self, interaction_id=interaction_id, token=token, type=type, payload=payload
        )
        self.interactions.append(handle)
        self._handles_by_id[interaction_id] = handle
        self._handles_by_token[token] = handle
        handle.dispatched_at = time.monotonic()
        self.gateway.dispatch("INTERACTION_CREATE", lambda _s: payload, guild_id)
        return handle

    # ---- gateway controls ---------------------------------------------------------------

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

    # ---- waiting and asserting ----------------------------------------------------------

    async def wait_until(
        self, probe: Callable[[], T | None], *, timeout: float = 10.0, what: str = "a condition"
    ) -> T:
        """Wait until `probe()` returns something other than None (re-checked on every change)."""
        return await self._changes.wait_for(probe, timeout, what)

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """The bot identified and was sent READY plus its GUILD_CREATEs."""
        await self.wait_until(
            lambda: True if any(s.guilds_sent for s in self.gateway.sessions.values()) else None,
            timeout=timeout,
            what="the bot to IDENTIFY",
        )

    async def wait_for_message(
        self,
        predicate: Callable[[RecordedMessage], bool] | None = None,
        *,
        channel_id: int | None = None,
        reply_to: int | None = None,
        timeout: float = 10.0,
    ) -> RecordedMessage:
        """The first recorded bot message (in send order) matching all the given filters."""

        def probe() -> RecordedMessage | None:
            # Replies are indexed by what they answer: a benchmark waits on thousands at once.
            candidates = self.sent_messages if reply_to is None else self._replies_to.get(reply_to, [])
            for message in candidates:
                if channel_id is not None and message.channel_id != channel_id:
                    continue
                if reply_to is not None and message.reply_to != reply_to:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        return await self.wait_until(probe, timeout=timeout, what="a matching bot message")

    async def wait_for_edit(
        self,
        message_id: int,
        predicate: Callable[[RecordedMessage], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> RecordedMessage:
        def probe() -> RecordedMessage | None:
            message = self._recorded_by_id.get(message_id)
            if message is None or not message.edits:
                return None
            return message if predicate is None or predicate(message) else None

        return await self.wait_until(probe, timeout=timeout, what=f"an edit of message {message_id}")

    def messages_in(self, channel_id: int) -> list[RecordedMessage]:
        return [m for m in self.sent_messages if m.channel_id == channel_id]

    def recorded(self, message_id: int) -> RecordedMessage:
        return self._recorded_by_id[message_id]

    @property
    def registered_commands(self) -> list[dict[str, Any]]:
        """Every command the bot synced (global ones have guild_id None)."""
        return [c for scope in self.commands.values() for c in scope]

    def registered_command(
        self, name: str, *, guild_id: int | None = None, type: int | None = None
    ) -> dict[str, Any]:
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and (type is None or command.get("type", 1) == type):
                    return command
        known = sorted(c["name"] for c in self.registered_commands)
        raise LookupError(f"no synced command {name!r} (type {type}) for guild {guild_id}; synced: {known}")

    # ---- internals shared with rest.py / gateway.py ------------------------------------

    def _token_accepted(self, token: str) -> bool:
        if token in self.revoked_tokens:
            return False
        return self.required_token is None or token == self.required_token

    def _revoke_token(self, token: str) -> None:
        self.revoked_tokens.add(token)

    def _record_token(self, token: str) -> None:
        self.tokens_seen.add(token)

    def _message(self, message_id: int) -> FakeMessage:
        message = self.world.messages.get(message_id)
        if message is None or message.deleted:
            raise KeyError(f"unknown message {message_id}")
        return message

    def _wants_message(self, session: GatewaySession, message: FakeMessage) -> bool:
        return session.has(GUILD_MESSAGES if message.guild_id is not None else DIRECT_MESSAGES)

    def _strips_content(self, session: GatewaySession, message: FakeMessage) -> bool:
        if message.guild_id is None or session.has(MESSAGE_CONTENT) or message.author_id == self.bot_user_id:
            return False
        mentioned = {int(m.group(1)) for m in USER_MENTION.finditer(message.content)}
        return self.bot_user_id not in mentioned

    def _dispatch_message(self, event: str, message: FakeMessage) -> None:
        def render(session: GatewaySession) -> dict[str, Any] | None:
            if not self._wants_message(session, message):
                return None
            return self.world.message_payload(message, strip_content=self._strips_content(session, message))

        self.gateway.dispatch(event, render, message.guild_id)

    def _guilds_of_shard(self, shard: Shard) -> list[FakeGuild]:
        """The guilds the bot is in whose events go to `shard`."""
        return [
            g for g in self.world.guilds.values() if self.bot_user_id in g.members and shard.receives(g.id)
        ]

    def _ready_payload(
        self, session: GatewaySession, guilds: list[FakeGuild], *, shard: Any
    ) -> dict[str, Any]:
        bot = self.world.user(self.bot_user_id)
        flags = (1 << 19) if self.message_content_intent_allowed else 0
        if self.members_intent_allowed:
            flags |= 1 << 15
        data: dict[str, Any] = {
            "v": 10,
            "user": bot.payload() | {"verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": f"ws://{self.host}:{self.port}/resume/",
            "application": {"id": str(self.application_id), "flags": flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        if shard is not None:
            data["shard"] = shard
        return data

    def _application_payload(self) -> dict[str, Any]:
        bot = self.world.user(self.bot_user_id)
        return {
            "id": str(self.application_id),
            "name": bot.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.world.user(self.app_owner_id).payload(),
            "team": None,
            "flags": (1 << 19) | (1 << 15),
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.world.guilds),
            "bot": bot.payload(),
        }

    def _record_bot_message(self, message: FakeMessage, **extra: Any) -> RecordedMessage:
        recorded = RecordedMessage(
            id=message.id,
            channel_id=message.channel_id,
            guild_id=message.guild_id,
            content=message.content,
            embeds=message.embeds,
            components=message.components,
            flags=message.flags,
            created_at=time.monotonic(),
            **extra,
        )
        self.sent_messages.append(recorded)
        self._recorded_by_id[message.id] = recorded
        if recorded.reply_to is not None:
            self._replies_to.setdefault(recorded.reply_to, []).append(recorded)
        self._changes.notify()
        return recorded

    def _record_edit(
        self, message: FakeMessage, changes: dict[str, Any], via: str, files: Iterable[StoredFile]
    ) -> None:
        recorded = self._recorded_by_id.get(message.id)
        edit = RecordedEdit(message.id, message.channel_id, changes, time.monotonic(), via)
        self.edits.append(edit)
        if recorded is not None:
            recorded.content = message.content
            recorded.embeds = message.embeds
            recorded.components = message.components
            recorded.flags = message.flags
            recorded.files.extend(files)
            if "allowed_mentions" in changes:
                recorded.allowed_mentions = changes["allowed_mentions"]
            recorded.edits.append(edit)
        self._changes.notify()
