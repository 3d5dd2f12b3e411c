"""What every REST resource handler shares: the fake and its world, path parameters read as
snowflakes, and the channel and guild lookups that answer as Discord does (unknown, Missing Access,
Missing Permissions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.discord.entities import FakeChannel
from sandbox.discord.http_util import ApiError, form_error, unknown
from sandbox.discord.permissions import VIEW_CHANNEL

if TYPE_CHECKING:
    from sandbox.discord.server import FakeDiscord


class RestBase:
    """The state and lookups the REST mixins (commands, messages, interactions) build on."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.world = fake.world

    def _channel(self, request: web.Request) -> FakeChannel:
        channel = self.world.channels.get(_int(request, "channel_id"))
        if channel is None:
            raise unknown("Channel", 10003)
        if channel.guild_id is not None:
            self._require(channel, VIEW_CHANNEL, missing_access=True)
        return channel

    def _require(self, channel: FakeChannel, permissions: int, *, missing_access: bool = False) -> None:
        if channel.guild_id is None:
            return
        guild = self.world.guilds[channel.guild_id]
        have = guild.member_permissions(self.fake.bot_user_id, channel.id)
        if have & permissions != permissions:
            if missing_access:
                raise ApiError(403, 50001, "Missing Access")
            raise ApiError(403, 50013, "Missing Permissions")

    def _guild(self, request: web.Request) -> Any:
        guild = self.world.guilds.get(_int(request, "guild_id"))
        if guild is None or self.fake.bot_user_id not in guild.members:
            raise unknown("Guild", 10004)
        return guild


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise form_error(
            name, "NUMBER_TYPE_COERCE", f"Value {request.match_info[name]!r} is not snowflake."
        ) from None
