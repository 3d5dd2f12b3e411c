"""The fake's world: users, guilds, channels, roles, members and messages, as Discord shapes them.

Everything here is plain data plus the payload builders that turn it into the JSON Discord sends.
Permission arithmetic follows Discord's documented algorithm (base from @everyone and roles,
administrator and owner short-circuit, then channel overwrites: @everyone, roles, member).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
CHANGE_NICKNAME = 1 << 26
MANAGE_ROLES = 1 << 28
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 53) - 1

DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CONNECT
    | SPEAK
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | SEND_MESSAGES_IN_THREADS
)

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


def iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


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


@dataclass
class FakeUser:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int
    managed_for_bot: int | None = None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed_for_bot is not None,
            "mentionable": False,
            "flags": 0,
        }
        if self.managed_for_bot is not None:
            data["tags"] = {"bot_id": str(self.managed_for_bot)}
        return data


@dataclass
class Overwrite:
    target_id: int
    is_member: bool
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.target_id),
            "type": 1 if self.is_member else 0,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class FakeChannel:
    id: int
    guild_id: int | None
    name: str
    position: int
    type: int = 0  # GUILD_TEXT; 1 is a DM
    topic: str | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipient_id: int | None = None
    last_message_id: int | None = None

    def payload(self, world: World | None = None) -> dict[str, Any]:
        if self.type == 1:
            recipients = []
            if world is not None and self.recipient_id is not None:
                recipients = [world.users[self.recipient_id].payload()]
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": _opt_str(self.last_message_id),
                "recipients": recipients,
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "topic": self.topic,
            "nsfw": False,
            "last_message_id": _opt_str(self.last_message_id),
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass
class FakeMember:
    user: FakeUser
    guild_id: int
    role_ids: list[int]
    joined_at: str = field(default_factory=iso_now)
    nick: str | None = None

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class StoredFile:
    """A file the fake serves: member uploads, bot uploads, embed images."""

    name: str
    data: bytes
    content_type: str


class FakeGuild:
    """A guild in the fake. Changes after the bot connected are dispatched on the gateway."""

    def __init__(self, world: World, guild_id: int, name: str, owner_id: int) -> None:
        self._world = world
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.channels: dict[int, FakeChannel] = {}
        self.roles: dict[int, FakeRole] = {
            guild_id: FakeRole(guild_id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, 0)
        }
        self.members: dict[int, FakeMember] = {}
        self.bot_role_id: int | None = None
        self.joined_at = iso_now()

    # ---- building the guild -------------------------------------------------------------

    @property
    def everyone_role_id(self) -> int:
        return self.id

    def add_channel(self, name: str, *, topic: str | None = None) -> int:
        channel = FakeChannel(self._world.snowflake(), self.id, name, len(self.channels), topic=topic)
        self.channels[channel.id] = channel
        self._world.channels[channel.id] = channel
        self._world.changed("CHANNEL_CREATE", channel.payload(), self.id)
        return channel.id

    def add_role(self, name: str, permissions: int = 0) -> int:
        role = FakeRole(self._world.snowflake(), name, permissions, len(self.roles))
        self.roles[role.id] = role
        self._world.changed("GUILD_ROLE_CREATE", {"guild_id": str(self.id), "role": role.payload()}, self.id)
        return role.id

    def set_role_permissions(self, role_id: int, permissions: int) -> None:
        role = self._role(role_id)
        role.permissions = permissions
        self._world.changed("GUILD_ROLE_UPDATE", {"guild_id": str(self.id), "role": role.payload()}, self.id)

    def add_member(
        self,
        name: str,
        *,
        roles: Iterable[int] = (),
        permissions: int | None = None,
        bot: bool = False,
        user_id: int | None = None,
    ) -> int:
        """Add a member; `permissions` gives them a personal role with exactly those bits."""
        if user_id is not None and user_id in self._world.users:
            user = self._world.users[user_id]
        else:
            user = self._world.add_user(name, bot=bot, user_id=user_id)
        role_ids = [self._role(r).id for r in roles]
        if permissions is not None:
            role_ids.append(self.add_role(f"{name} permissions", permissions))
        return self._attach_member(FakeMember(user, self.id, role_ids)).user.id

    def _attach_member(self, member: FakeMember) -> FakeMember:
        self.members[member.user.id] = member
        payload = member.payload() | {"guild_id": str(self.id)}
        self._world.changed("GUILD_MEMBER_ADD", payload, self.id)
        return member

    def give_role(self, member_id: int, role_id: int) -> None:
        member = self.member(member_id)
        if role_id not in member.role_ids:
            member.role_ids.append(self._role(role_id).id)
        payload = member.payload() | {"guild_id": str(self.id)}
        self._world.changed("GUILD_MEMBER_UPDATE", payload, self.id)

    def set_channel_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Allow/deny bits in a channel for a role (the guild id is @everyone) or a member."""
        channel = self.channel(channel_id)
        if target_id in self.roles:
            is_member = False
        elif target_id in self.members:
            is_member = True
        else:
            raise KeyError(f"{target_id} is neither a role nor a member of guild {self.id}")
        channel.overwrites[target_id] = Overwrite(target_id, is_member, allow, deny)
        self._world.changed("CHANNEL_UPDATE", channel.payload(), self.id)

    # ---- lookups ------------------------------------------------------------------------

    def member(self, member_id: int) -> FakeMember:
        try:
            return self.members[member_id]
        except KeyError:
            raise KeyError(f"user {member_id} is not a member of guild {self.id} ({self.name})") from None

    def channel(self, channel_id: int) -> FakeChannel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise KeyError(f"channel {channel_id} is not in guild {self.id} ({self.name})") from None

    def _role(self, role_id: int) -> FakeRole:
        try:
            return self.roles[role_id]
        except KeyError:
            raise KeyError(f"role {role_id} is not in guild {self.id} ({self.name})") from None

    # ---- permissions --------------------------------------------------------------------

    def base_permissions(self, member_id: int) -> int:
        if member_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.member(member_id)
        perms = self.roles[self.id].permissions
        for role_id in member.role_ids:
            perms |= self.roles[role_id].permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def member_permissions(self, member_id: int, channel_id: int | None = None) -> int:
        perms = self.base_permissions(member_id)
        if perms == ALL_PERMISSIONS or channel_id is None:
            return perms
        channel = self.channel(channel_id)
        everyone = channel.overwrites.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        member = self.member(member_id)
        allow = deny = 0
        for role_id in member.role_ids:
            overwrite = channel.overwrites.get(role_id)
            if overwrite is not None and not overwrite.is_member:
                allow |= overwrite.allow
                deny |= overwrite.deny
        perms = (perms & ~deny) | allow
        personal = channel.overwrites.get(member_id)
        if personal is not None and personal.is_member:
            perms = (perms & ~personal.deny) | personal.allow
        return perms

    # ---- payloads -----------------------------------------------------------------------

    def payload(self, *, include_all_members: bool, bot_user_id: int) -> dict[str, Any]:
        members = [
            m.payload() for m in self.members.values() if include_all_members or m.user.id == bot_user_id
        ]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "nsfw": False,
            "joined_at": self.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": members,
            "channels": [c.payload() for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    message_reference: dict[str, Any] | None = None
    interaction_metadata: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    deleted: bool = False
    reactions: dict[str, set[int]] = field(default_factory=dict)


class World:
    """All state of the fake. `changed` is called for every post-ready change worth dispatching."""

    def __init__(self, on_change: Callable[[str, dict[str, Any], int | None], None]) -> None:
        self.snowflake = SnowflakeFactory()
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.files: dict[str, StoredFile] = {}
        self._on_change = on_change

    def changed(self, event: str, data: dict[str, Any], guild_id: int | None) -> None:
        self._on_change(event, data, guild_id)

    def add_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> FakeUser:
        user = FakeUser(user_id if user_id is not None else self.snowflake(), name, bot)
        self.users[user.id] = user
        return user

    def user(self, user_id: int) -> FakeUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise KeyError(f"unknown user {user_id}") from None

    def channel(self, channel_id: int) -> FakeChannel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}") from None

    def guild_of(self, channel_id: int) -> FakeGuild | None:
        channel = self.channel(channel_id)
        return None if channel.guild_id is None else self.guilds[channel.guild_id]

    def dm_channel(self, user_id: int) -> FakeChannel:
        for channel in self.channels.values():
            if channel.type == 1 and channel.recipient_id == user_id:
                return channel
        channel = FakeChannel(self.snowflake(), None, "", 0, type=1, recipient_id=user_id)
        self.channels[channel.id] = channel
        return channel

    def message_payload(self, message: FakeMessage, *, strip_content: bool = False) -> dict[str, Any]:
        """The message as Discord sends it; `strip_content` applies the message-content intent rule."""
        author = self.users[message.author_id]
        guild = self.guilds.get(message.guild_id) if message.guild_id is not None else None
        mentions = []
        for match in USER_MENTION.finditer(message.content):
            user = self.users.get(int(match.group(1)))
            if user is None:
                continue
            mention = user.payload()
            if guild is not None and user.id in guild.members:
                mention["member"] = guild.members[user.id].payload(with_user=False)
            mentions.append(mention)
        data: dict[str, Any] = {
            "id": str(message.id),
            "type": message.type,
            "channel_id": str(message.channel_id),
            "author": author.payload(),
            "content": "" if strip_content else message.content,
            "timestamp": message.timestamp,
            "edited_timestamp": message.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [m.group(1) for m in ROLE_MENTION.finditer(message.content)],
            "attachments": [] if strip_content else list(message.attachments),
            "embeds": [] if strip_content else list(message.embeds),
            "components": [] if strip_content else list(message.components),
            "pinned": False,
            "flags": message.flags,
            "reactions": [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me": False,
                    "me_burst": False,
                }
                for emoji, users in message.reactions.items()
                if users
            ],
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
            if author.id in guild.members and message.webhook_id is None:
                data["member"] = guild.members[author.id].payload(with_user=False)
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
        if message.application_id is not None:
            data["application_id"] = str(message.application_id)
        if message.interaction_metadata is not None:
            data["interaction_metadata"] = message.interaction_metadata
        if message.message_reference is not None:
            data["message_reference"] = message.message_reference
            referenced = self.messages.get(int(message.message_reference.get("message_id", 0)))
            if referenced is not None and not referenced.deleted:
                data["referenced_message"] = self.message_payload(referenced, strip_content=strip_content)
            else:
                data["referenced_message"] = None
        return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height when the bytes are an image Pillow can read; attachments carry them."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - not an image (or a broken one): Discord omits the size
        return None


def _opt_str(value: int | None) -> str | None:
    return None if value is None else str(value)
