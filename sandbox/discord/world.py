"""The fake's world: all its state (users, guilds, channels, messages, served files) and the message
payload as Discord sends it, mentions and the message-content intent rule included.

The records it holds live in entities.py, guilds in guild.py, permission bits in permissions.py.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from sandbox.discord.entities import FakeChannel, FakeMessage, FakeUser, StoredFile
from sandbox.discord.guild import FakeGuild
from sandbox.discord.snowflakes import SnowflakeFactory

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


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
