"""A guild in the fake: building it (channels, roles, members, overwrites), looking things up in it,
its permission arithmetic and its payload.

Permission arithmetic follows Discord's documented algorithm (base from @everyone and roles,
administrator and owner short-circuit, then channel overwrites: @everyone, roles, member).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sandbox.discord.entities import FakeChannel, FakeMember, FakeRole, Overwrite, iso_now
from sandbox.discord.permissions import ADMINISTRATOR, ALL_PERMISSIONS, DEFAULT_EVERYONE_PERMISSIONS

if TYPE_CHECKING:
    from sandbox.discord.world import World


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
