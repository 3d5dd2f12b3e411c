"""FakeDiscord: REST and gateway on one loopback port, plus the harness tests drive it with.

A test builds a world (guilds, channels, roles, members), starts the fake, points discord.py at
it, and then acts as members (post, slash, click, choose, submit a modal, autocomplete) while
asserting on what the bot sent (`sent_messages`, interaction handles, `registered_commands`).

This module owns the fake's state, lifecycle, guild building and the internals rest and gateway
call; the harness methods come from mixins: member_actions.py, member_interactions.py,
gateway_controls.py and recording.py.
"""

from __future__ import annotations

import base64
import itertools
import logging
import secrets
from typing import Any, Self
from urllib.parse import quote

from aiohttp import web

from sandbox.discord.entities import FakeMember, FakeMessage, FakeRole, StoredFile
from sandbox.discord.gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    Gateway,
    GatewaySession,
)
from sandbox.discord.gateway_controls import GatewayControls
from sandbox.discord.guild import FakeGuild
from sandbox.discord.http_util import RateLimiter
from sandbox.discord.member_actions import MemberActions
from sandbox.discord.member_interactions import MemberInteractions
from sandbox.discord.permissions import DEFAULT_BOT_PERMISSIONS
from sandbox.discord.recording import Recording
from sandbox.discord.records import (
    Changes,
    ForcedRateLimit,
    InteractionHandle,
    RecordedEdit,
    RecordedMessage,
    RequestRecord,
)
from sandbox.discord.rest import RestApi
from sandbox.discord.sharding import Shard, ShardingRules
from sandbox.discord.world import USER_MENTION, World, image_size

log = logging.getLogger(__name__)


class FakeDiscord(MemberActions, MemberInteractions, GatewayControls, Recording):
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

    # ---- internals shared with rest*.py, gateway.py and the mixins ---------------------

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
